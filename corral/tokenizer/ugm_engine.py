"""A Unigram `tokenizers` engine from a GGUF "t5" vocabulary (llama.cpp's UGM: XLM-RoBERTa, bge-m3, T5).

The GGUF holds the SentencePiece pieces with their scores, token types, and the normalizer's
precompiled character map (`tokenizer.ggml.precompiled_charsmap`, NFKC and friends); spaces become
"\u2581" with one put in front of the text (`add_space_prefix`), and runs of spaces collapse first
when `remove_extra_whitespaces`, as SentencePiece and XLM-RoBERTa's tokenizer.json do.
"""
from __future__ import annotations

from typing import Any

from corral.tokenizer.token_types import CONTROL, UNKNOWN, USER_DEFINED


def build_unigram_engine(tokens: list[str], scores: list[float], types: list[int], charsmap: bytes | None,
                         add_space_prefix: bool = True, remove_extra_whitespaces: bool = True) -> Any:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    unk = next((i for i, k in enumerate(types) if k == UNKNOWN), None)
    engine = Tokenizer(models.Unigram(list(zip(tokens, scores)), unk, False))
    steps = [normalizers.Precompiled(charsmap)] if charsmap else []
    if remove_extra_whitespaces:
        steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    if steps:
        engine.normalizer = normalizers.Sequence(steps)
    scheme = "always" if add_space_prefix else "never"
    engine.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=scheme)
    engine.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme=scheme)
    specials = [t for t, k in zip(tokens, types) if k in (CONTROL, USER_DEFINED, UNKNOWN)]
    engine.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return engine
