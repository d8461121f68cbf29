"""A byte-level GGUF vocabulary keeps its added tokens out of the engine: it must still encode and
decode exactly as `tokenizers` does with them in its added vocabulary (the tokenizer.json path)."""
from __future__ import annotations

import random
import shutil

import pytest

from corral.loader.gguf_file import GGUFFile
from corral.tokenizer import Tokenizer
from corral.tokenizer.added_tokens import NORMAL, SPECIAL, USER, AddedTokens
from tests.fixtures.tokenizers import write_bpe_tokenizer
from tokenizer_files import write_vocab_gguf

SPECIAL_TEXTS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|tool_call|>", "<|reserved_special_token_7|>",
                 "<|reserved_special_token_70|>"]
USER_TEXTS = ["<|im", "<think>", "</think>", "日本語", "ab", "x"]
FRAGMENTS = ["<", "|", "<|", "im_", "end|>", " ", "  ", "\n", "hello", "Ġ", "é", "🙂", "think", "/", ">",
             "reserved_special_token_", "7", "0|>", "a", "b"]


def test_split_takes_the_longest_token_at_the_leftmost_position():
    added = AddedTokens([(10, "<|a|>", True), (11, "<|a|>b", True), (12, "<|", False), (13, "b", False),
                         (14, "日本", True), (15, "<|a|>", True)], vocab_size=20)
    assert added.split("") == []
    assert added.split("plain text") == ["plain text"]
    assert added.split("x<|a|>by") == ["x", 11, "y"]
    assert added.split("<|a|><|a|>") == [10, 10]  # a repeated text finds its lowest id
    assert added.split("<|a") == [12, "a"]
    assert added.split("ab日本語b") == ["a", 13, 14, "語", 13]
    assert [added.kind(i) for i in (9, 10, 12, 15, 25, -1)] == [NORMAL, SPECIAL, USER, SPECIAL, NORMAL, NORMAL]
    assert (added.text(11), added.text(15), added.text(9), added.text(99)) == ("<|a|>b", "<|a|>", None, None)
    assert (added.find("<|a|>b"), added.find("<|a|>"), added.find("<|a|"), added.find("")) == (11, 10, None, None)


def test_split_agrees_with_a_brute_force_search():
    rng = random.Random(0)
    texts = ["<|", "<|x", "<|x|>", "<|xy|>", "ab", "abc", "b", "é", "éa", "🙂", "🙂🙂"]
    added = AddedTokens([(i, t, i % 2 == 0) for i, t in enumerate(texts)], vocab_size=len(texts))
    for _ in range(500):
        text = "".join(rng.choice(texts + ["|", ">", "x", "a", "c", " "]) for _ in range(rng.randint(0, 8)))
        expected, i, plain = [], 0, ""
        while i < len(text):
            longest = max((t for t in texts if text.startswith(t, i)), key=len, default=None)
            if longest is None:
                plain += text[i]
                i += 1
                continue
            if plain:
                expected.append(plain)
                plain = ""
            expected.append(texts.index(longest))
            i += len(longest)
        if plain:
            expected.append(plain)
        assert added.split(text) == expected, text


@pytest.fixture(scope="module")
def added_dirs(tmp_path_factory):
    """A Qwen2-style tokenizer with extra special and user-defined tokens, and a Llama 3-style one
    padded with thousands of reserved special tokens (as the benchmark models are)."""
    from tokenizers import AddedToken, Tokenizer as Engine

    root = tmp_path_factory.mktemp("added")
    qwen = root / "qwen2"
    write_bpe_tokenizer(qwen, vocab_size=400, style="qwen2")
    engine = Engine.from_file(str(qwen / "tokenizer.json"))
    engine.add_special_tokens([AddedToken("<|tool_call|>", special=True, normalized=False)])
    engine.add_tokens([AddedToken(t, special=False, normalized=False) for t in USER_TEXTS])
    engine.save(str(qwen / "tokenizer.json"))
    padded = root / "llama3"
    write_bpe_tokenizer(padded, vocab_size=4000, style="llama3")
    return {"qwen2": qwen, "llama3-padded": padded}


@pytest.mark.parametrize("name", ["qwen2", "llama3-padded"])
def test_gguf_matches_the_tokenizers_added_vocabulary(name, added_dirs, tmp_path):
    reference = Tokenizer.from_hf_dir(added_dirs[name])
    gf = GGUFFile(write_vocab_gguf(added_dirs[name], tmp_path / "vocab.gguf"))
    ours = Tokenizer.from_gguf(gf)
    assert ours.added_tokens is not None and len(ours.added_tokens) >= (3000 if name == "llama3-padded" else 10)
    assert ours.vocab_size == reference.vocab_size
    # Only added tokens that are also ordinary entries, which merges build ("ab", the byte "x"),
    # stay in the engine.
    in_engine = set(ours.engine.get_vocab())
    both = {"ab", "x"} if name == "qwen2" else set()
    assert len(in_engine) == reference.vocab_size - len(ours.added_tokens) + len(both) and both <= in_engine
    rng = random.Random(1)
    pieces = SPECIAL_TEXTS + USER_TEXTS + FRAGMENTS
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        ids = reference.encode(text, add_special_tokens=False)
        assert ours.encode(text, add_special_tokens=False) == ids, text
        assert ours.encode(text) == reference.encode(text), text
        for skip in (True, False):
            assert ours.decode(ids, skip) == reference.decode(ids, skip), text
    for _ in range(300):
        ids = [rng.randrange(reference.vocab_size) for _ in range(rng.randint(0, 10))]
        for skip in (True, False):
            assert ours.decode(ids, skip) == reference.decode(ids, skip), ids
    for i in list(range(reference.vocab_size - 50, reference.vocab_size)) + list(range(0, 400, 7)):
        assert ours.id_to_piece(i) == reference.id_to_piece(i), i
        assert ours.piece_to_id(reference.id_to_piece(i)) == i, i
        assert ours.is_special(i) == reference.is_special(i), i
        assert ours.token_to_bytes(i) == reference.token_to_bytes(i), i
    assert ours.eos_token_ids == reference.eos_token_ids


def test_vocabulary_strings_are_decoded_only_on_access(added_dirs, tmp_path):
    from corral.loader.gguf_header import LazyStrings

    gf = GGUFFile(write_vocab_gguf(added_dirs["llama3-padded"], tmp_path / "vocab.gguf"))
    assert isinstance(gf.metadata._values["tokenizer.ggml.tokens"], LazyStrings)
    assert "tokenizer.ggml.tokens" in gf.metadata
    tokens = gf.metadata["tokenizer.ggml.tokens"]
    assert len(tokens) == 4000 and tokens is not gf.metadata["tokenizer.ggml.tokens"]


def test_copied_folder_keeps_working(added_dirs, tmp_path):
    folder = shutil.copytree(added_dirs["qwen2"], tmp_path / "copy")
    tok = Tokenizer.from_gguf(GGUFFile(write_vocab_gguf(folder, tmp_path / "v.gguf")))
    ids = tok.encode("<think>hi</think><|im_end|>")
    assert ids[0] == tok.piece_to_id("<think>") and ids[-1] == tok.eos_token_id
    assert tok.decode(ids) == "<think>hi</think>"
