"""Incremental detokenizing: deltas never split a character and concatenate to decode()."""
from __future__ import annotations

import random

import pytest

from corral.tokenizer import IncrementalDetokenizer, Tokenizer

# Rare characters fall back to bytes in the SPM fixture and split across byte-level tokens.
TEXT = ("Hello  world! Café naïve 🙂🚀 日本語のテキスト 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ﷽ ǅ\n"
        "def f(x):\n\treturn x ** 2  # ✨ 한국어\n")


def _stream(tokenizer, ids, chunk_sizes, skip_special_tokens=True):
    detok = IncrementalDetokenizer(tokenizer, skip_special_tokens=skip_special_tokens)
    deltas, pos = [], 0
    for size in chunk_sizes:
        deltas.append(detok.add(ids[pos:pos + size]))
        pos += size
    deltas.append(detok.add(ids[pos:]))
    deltas.append(detok.flush())
    return deltas


@pytest.mark.parametrize("style", ["llama3", "qwen2", "spm"])
@pytest.mark.parametrize("skip_special_tokens", [True, False])
def test_deltas_concatenate_to_decode(style, skip_special_tokens, style_dirs):
    tok = Tokenizer.from_hf_dir(style_dirs[style])
    ids = tok.encode(TEXT) + tok.encode(TEXT, add_special_tokens=False) + [tok.eos_token_id]
    expected = tok.decode(ids, skip_special_tokens=skip_special_tokens)
    rng = random.Random(0)
    for trial in range(20):
        sizes = [1] * len(ids) if trial == 0 else [rng.randint(0, 4) for _ in range(len(ids) // 2)]
        deltas = _stream(tok, ids, sizes, skip_special_tokens)
        assert "".join(deltas) == expected
        for delta in deltas[:-1]:
            assert "\ufffd" not in delta


def test_multibyte_characters_wait_for_their_last_byte(spm_dir):
    tok = Tokenizer.from_hf_dir(spm_dir)
    ids = tok.encode("a🦙b", add_special_tokens=False)
    byte_pieces = [tok.id_to_piece(i) for i in ids if tok.id_to_piece(i).startswith("<0x")]
    assert len(byte_pieces) == 4  # the llama emoji is four byte-fallback tokens
    detok = IncrementalDetokenizer(tok)
    out = [detok.add([i]) for i in ids] + [detok.flush()]
    assert "".join(out) == "a🦙b"
    assert "🦙" in out and all(o in ("", "a", "🦙", "b") for o in out)


def test_byte_level_characters_split_across_tokens(llama3_dir):
    tok = Tokenizer.from_hf_dir(llama3_dir)
    ids = tok.encode("ǅ𝔘", add_special_tokens=False)
    assert len(ids) > 2  # unseen characters: one token per byte
    detok = IncrementalDetokenizer(tok)
    out = [detok.add([i]) for i in ids]
    assert [o for o in out if o] == ["ǅ", "𝔘"]
    assert detok.flush() == ""


def test_spm_leading_space_and_prompt_context(spm_dir):
    tok = Tokenizer.from_hf_dir(spm_dir)
    prompt = tok.encode("[INST] hi [/INST]")
    output = tok.encode("Hello there", add_special_tokens=False)
    plain = IncrementalDetokenizer(tok)
    assert "".join(plain.add([i]) for i in output) + plain.flush() == tok.decode(output) == "Hello there"
    in_context = IncrementalDetokenizer(tok, prompt_ids=prompt)
    streamed = "".join(in_context.add([i]) for i in output) + in_context.flush()
    assert streamed == " Hello there"
    assert in_context.token_ids[-len(output):] == output


def test_flush_emits_an_incomplete_character(spm_dir):
    tok = Tokenizer.from_hf_dir(spm_dir)
    first_byte = tok.piece_to_id("<0xF0>")
    detok = IncrementalDetokenizer(tok)
    assert detok.add([tok.encode("a", False)[0], first_byte]) == "a"
    assert detok.flush() == "\ufffd" == tok.decode([first_byte])
    assert detok.flush() == ""


def test_window_stays_small(llama3_dir):
    tok = Tokenizer.from_hf_dir(llama3_dir)
    calls = []
    original = tok.decode

    def counting_decode(ids, skip_special_tokens=True):
        calls.append(len(ids))
        return original(ids, skip_special_tokens)

    tok.decode = counting_decode
    ids = tok.encode(TEXT * 20, add_special_tokens=False)
    detok = IncrementalDetokenizer(tok)
    for i in ids:
        detok.add([i])
    assert max(calls) <= 8  # a window of a few ids, never the whole output
