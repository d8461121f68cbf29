"""A prompt far too long for the context is refused from a prefix, never tokenized whole."""
from __future__ import annotations

import pytest

from corral.engine.prompt_tokens import PROBE_CHARS_PER_TOKEN, encode_prompt
from corral.errors import ContextLengthError, ValidationError


class CharTokenizer:
    """One token per character (a worst case for the prefix bound), recording what it encodes."""

    def __init__(self):
        self.encoded_lengths: list[int] = []

    def encode(self, text, add_special_tokens=True):
        self.encoded_lengths.append(len(text))
        return ([0] if add_special_tokens else []) + [ord(c) % 100 for c in text]


def test_a_huge_prompt_is_refused_from_a_prefix():
    tok = CharTokenizer()
    with pytest.raises(ContextLengthError) as err:
        encode_prompt(tok, "x" * 8_000_000, 255)
    assert tok.encoded_lengths == [255 * PROBE_CHARS_PER_TOKEN]
    assert "more than 255" in str(err.value) and "256" in str(err.value)


def test_prompts_that_fit_are_encoded_whole_and_those_just_over_are_refused():
    tok = CharTokenizer()
    assert len(encode_prompt(tok, "y" * 100, 255)) == 101  # BOS added
    assert len(encode_prompt(tok, "y" * 100, 100, add_special_tokens=False)) == 100
    with pytest.raises(ContextLengthError):
        encode_prompt(tok, "y" * 101, 100, add_special_tokens=False)


def test_long_texts_of_few_tokens_still_fit():
    class WordTokenizer(CharTokenizer):  # one token per 1000 characters
        def encode(self, text, add_special_tokens=True):
            self.encoded_lengths.append(len(text))
            return [1] * (len(text) // 1000 + 1)

    assert len(encode_prompt(WordTokenizer(), "z" * 50_000, 100)) == 51


def test_a_lone_surrogate_is_a_validation_error():
    with pytest.raises(ValidationError) as err:
        encode_prompt(CharTokenizer(), "ok \ud800", 100)
    assert "surrogate" in str(err.value) and err.value.param == "prompt"
