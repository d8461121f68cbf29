"""A model's fill-in-the-middle (FIM) tokens, as llama.cpp finds them.

GGUF files may name them in metadata (`tokenizer.ggml.fim_pre_token_id`, `fim_suf`, `fim_mid`,
`fim_rep`, `fim_sep`, `fim_pad`, or the older `prefix_token_id`/`suffix_token_id`/`middle_token_id`);
otherwise they are found by their text in the vocabulary, per family:
Qwen2.5-Coder and CodeGemma `<|fim_prefix|>`, StarCoder2 `<fim_prefix>`, CodeLlama `<PRE>`/`▁<PRE>`,
DeepSeek-Coder `<｜fim▁begin｜>` (its "hole" is the suffix marker, its "end" the middle one).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_TEXTS = {
    "prefix": ("<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>"),
    "suffix": ("<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>"),
    "middle": ("<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>"),
    "repo": ("<|repo_name|>", "<repo-name>", "<repo_name>", "<reponame>"),
    "sep": ("<|file_sep|>", "<file-sep>", "<file_sep>"),
}
_GGUF_KEYS = {
    "prefix": ("fim_pre_token_id", "prefix_token_id"),
    "suffix": ("fim_suf_token_id", "suffix_token_id"),
    "middle": ("fim_mid_token_id", "middle_token_id"),
    "repo": ("fim_rep_token_id",),
    "sep": ("fim_sep_token_id",),
}


@dataclass(frozen=True)
class FimTokens:
    prefix: int
    suffix: int
    middle: int
    repo: int | None = None  # repository name marker (Qwen2.5-Coder, StarCoder2)
    sep: int | None = None  # file separator marker


def find_fim_tokens(tokenizer: Any, gguf_metadata: Mapping[str, Any] | None = None) -> FimTokens | None:
    """The model's FIM tokens, None when it has no prefix, suffix and middle markers."""
    found: dict[str, int | None] = {}
    for role, texts in _TEXTS.items():
        value = None
        for key in _GGUF_KEYS[role]:
            v = (gguf_metadata or {}).get("tokenizer.ggml." + key)
            if isinstance(v, int) and 0 <= v < tokenizer.vocab_size:
                value = v
                break
        for text in texts if value is None else ():
            token_id = tokenizer.piece_to_id(text)
            if token_id is not None:
                value = token_id
                break
        found[role] = value
    if found["prefix"] is None or found["suffix"] is None or found["middle"] is None:
        return None
    return FimTokens(found["prefix"], found["suffix"], found["middle"], found["repo"], found["sep"])
