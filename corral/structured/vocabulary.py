"""The model's vocabulary as llguidance sees it: the bytes each token id adds to the text.

Ids past the tokenizer's vocabulary (embedding rows padded to a round size, as Qwen2.5's 151936)
have no bytes, so no grammar ever allows them. Special tokens (BOS, `<|im_end|>`, ...) are known
as such: a grammar matches them only by name, never as text. Building it reads every token once
(about a second for a 150k vocabulary), so the engine builds it on the first constrained request.
"""
from __future__ import annotations

from typing import Any


class _Wrapper:
    """What `llguidance.TokenizerWrapper` reads: tokens, special ids, EOS, and an encoder."""

    def __init__(self, tokenizer: Any, num_ids: int):
        n = min(tokenizer.vocab_size, num_ids)
        self.tokens = [tokenizer.token_to_bytes(i) for i in range(n)] + [b""] * (num_ids - n)
        self.special_token_ids = [i for i in range(n) if tokenizer.is_special(i)]
        eos = sorted(tokenizer.eos_token_ids)
        self.eos_token_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else (eos[0] if eos else 0)
        self.bos_token_id = tokenizer.bos_token_id
        self._encode = tokenizer.encode

    def __call__(self, text):
        if isinstance(text, bytes):
            raise TypeError("takes str")  # tells the wrapper to hand us str
        return self._encode(text, add_special_tokens=False)


def build_ll_tokenizer(tokenizer: Any, num_ids: int):
    """An `llguidance.LLTokenizer` for `tokenizer`, with `num_ids` ids (the logits' width); every
    end-of-turn token of the model ends a grammar."""
    import llguidance

    wrapper = _Wrapper(tokenizer, num_ids)
    eos = sorted(i for i in tokenizer.eos_token_ids if i < num_ids) or [wrapper.eos_token_id]
    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(wrapper), eos_token=eos)
