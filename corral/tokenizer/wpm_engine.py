"""A WordPiece `tokenizers` engine from a GGUF "bert" vocabulary (llama.cpp's WPM).

llama.cpp's converter writes BERT vocabularies in "phantom space" form: a word-initial piece gets a
leading "\u2581", a continuation piece loses its "##", and bracketed specials ("[CLS]") stay as they
are. This undoes that and builds the engine BERT's uncased tokenizer is (lower-casing, accents
stripped, punctuation and CJK split), as llama.cpp's WPM tokenizer does.
"""
from __future__ import annotations

from typing import Any

from corral.tokenizer.token_types import CONTROL, USER_DEFINED

PHANTOM_SPACE = "\u2581"


def wordpiece_vocab(tokens: list[str], types: list[int]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for i, (tok, kind) in enumerate(zip(tokens, types)):
        if kind in (CONTROL, USER_DEFINED) or (tok.startswith("[") and tok.endswith("]")):
            word = tok
        elif tok.startswith(PHANTOM_SPACE):
            word = tok[len(PHANTOM_SPACE):]
        else:
            word = "##" + tok
        vocab.setdefault(word, i)
    return vocab


def build_wordpiece_engine(tokens: list[str], types: list[int], unk_token: str) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers

    engine = Tokenizer(models.WordPiece(wordpiece_vocab(tokens, types), unk_token=unk_token, max_input_chars_per_word=100))
    engine.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    engine.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    engine.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    specials = [t for t, k in zip(tokens, types) if k == CONTROL or (t.startswith("[") and t.endswith("]"))]
    engine.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return engine
