"""GGUF / SentencePiece token types and the end-of-generation tokens llama.cpp recognizes by text."""
from __future__ import annotations

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Tokens that end a turn in some chat format. llama.cpp treats these as end-of-generation when
# the vocabulary has them; corral adds them to `eos_token_ids` the same way.
END_OF_TURN_TEXTS = frozenset({
    "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>", "<end_of_utterance>",
    "<|return|>", "<|call|>",
})


def looks_like_control(text: str) -> bool:
    """True for added tokens spelled like control tokens (`<|im_start|>`, `<｜...｜>`), which
    converters mark as control even when a tokenizer.json forgets the `special` flag."""
    return (text.startswith("<|") and text.endswith("|>")) or (text.startswith("<｜") and text.endswith("｜>"))
