"""Malformed tokenizer data (GGUF tokenizer metadata, tokenizer.json, tokenizer_config.json,
tokenizer.model, chat_template.jinja) gives a TokenizerError, never another exception."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.errors import TokenizerError
from corral.loader.gguf_file import GGUFFile
from corral.tokenizer import Tokenizer
from corral.tokenizer.gguf_loader import load_gguf_tokenizer
from tokenizer_files import write_vocab_gguf

K = "tokenizer.ggml."


@pytest.fixture(scope="module")
def metadata(qwen2_dir, tmp_path_factory):
    """The metadata of a byte-level BPE vocabulary, as GGUFFile reads it (LazyStrings decoded)."""
    path = write_vocab_gguf(qwen2_dir, tmp_path_factory.mktemp("vocab") / "vocab.gguf")
    return dict(GGUFFile(path).metadata)


def test_the_vocabulary_loads(metadata):
    assert load_gguf_tokenizer(metadata, "m.gguf").vocab_size == len(metadata[K + "tokens"])


@pytest.mark.parametrize("key,value,match", [
    ("model", 5, "tokenizer.ggml.model is 5"),
    ("model", ["gpt2"], "tokenizer.ggml.model is"),
    ("tokens", np.arange(4), "tokens list of strings"),
    ("tokens", [["a"], ["b"]], "tokens list of strings"),
    ("tokens", [], "tokens list of strings"),
    ("token_type", 0, "token_type must be an array of integers"),
    ("token_type", ["1", "2"], "token_type must be an array of integers"),
    ("token_type", np.array([1.5, 2.5]), "token_type must be an array of integers"),
    ("token_type", np.array([1, 1]), "token_type has 2 entries"),
    ("merges", [1, 2], "malformed merge 1"),
    ("merges", ["a b c"], "malformed merge 'a b c'"),
    ("merges", ["zz qq"], "cannot build the BPE tokenizer"),
    ("merges", "a b", "needs tokenizer.ggml.merges"),
    ("pre", np.array([1, 2]), "tokenizer.ggml.pre is"),
    ("pre", ["qwen2"], "tokenizer.ggml.pre is"),
])
def test_malformed_gguf_tokenizer_metadata(metadata, key, value, match):
    with pytest.raises(TokenizerError, match=match):
        load_gguf_tokenizer({**metadata, K + key: value}, "m.gguf")


def test_malformed_sentencepiece_scores(spm_dir, tmp_path):
    metadata = dict(GGUFFile(write_vocab_gguf(spm_dir, tmp_path / "spm.gguf")).metadata)
    n = len(metadata[K + "tokens"])
    for scores, match in [(np.full(n, math.nan), "NaN"), (["x"] * n, "array of numbers"),
                          (np.zeros(3), "3 entries"), ("0", "array of numbers")]:
        with pytest.raises(TokenizerError, match=match):
            load_gguf_tokenizer({**metadata, K + "scores": scores}, "m.gguf")


def test_odd_optional_keys_are_ignored(metadata):
    """Values corral can do without (special ids, flags, template lists) are ignored when malformed."""
    tok = load_gguf_tokenizer({**metadata, K + "bos_token_id": "1", K + "eos_token_id": 10**30,
                               K + "add_bos_token": "yes", "tokenizer.chat_templates": "tool_use",
                               "tokenizer.chat_template": 5}, "m.gguf")
    assert tok.bos_token_id is None and tok.eos_token_id is None and tok.chat_templates == {}


ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=True), st.text(max_size=8),
    st.lists(st.text(max_size=4), max_size=4), st.lists(st.integers(-5, 5), max_size=4),
    st.builds(np.array, st.lists(st.floats(allow_nan=True), max_size=4)),
)
KEYS = ["model", "tokens", "token_type", "merges", "pre", "scores", "bos_token_id", "eos_token_id",
        "add_bos_token", "add_space_prefix"]


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(st.sampled_from(KEYS), ODD_VALUES, min_size=1, max_size=3))
def test_fuzzed_gguf_tokenizer_metadata(metadata, changes):
    try:
        load_gguf_tokenizer({**metadata, **{K + k: v for k, v in changes.items()}}, "m.gguf")
    except TokenizerError as e:
        assert "\n" not in str(e)


@pytest.fixture()
def folder(qwen2_dir, tmp_path):
    return shutil.copytree(qwen2_dir, tmp_path / "tok")


@pytest.mark.parametrize("name,content,match", [
    ("tokenizer.json", '{"model": {"type": "BPE", "vocab": [1, 2], "merges": []}}', "tokenizer.json"),
    ("tokenizer.json", "[" * 100_000, "tokenizer.json"),
    ("tokenizer.json", b"\xff\xfe\x00", "tokenizer.json"),
    ("tokenizer_config.json", "[" * 100_000 + "]" * 100_000, "tokenizer_config.json"),
    ("tokenizer_config.json", b"\xff\xfe{}", "tokenizer_config.json"),
    ("chat_template.jinja", b"{{ messages }}\xff", "chat_template.jinja"),
])
def test_malformed_hf_tokenizer_files(folder, name, content, match):
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(TokenizerError, match=match):
        Tokenizer.from_hf_dir(folder)


@pytest.mark.parametrize("content", [b"\x0a" + b"\xff" * 100_000, b"\x0a\x05\x08\xff\xff\xff\x7f", b"\x08" * 3])
def test_malformed_sentencepiece_model(spm_dir, tmp_path, content):
    folder = shutil.copytree(spm_dir, tmp_path / "spm")
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.model").write_bytes(content)
    with pytest.raises(TokenizerError, match="tokenizer.model|SentencePiece"):
        Tokenizer.from_hf_dir(folder)


def test_added_tokens_with_odd_indices(spm_dir, tmp_path):
    folder = shutil.copytree(spm_dir, tmp_path / "spm")
    (folder / "tokenizer.json").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {"not-a-number": {"content": "<x>"}}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(TokenizerError, match="tokenizer_config.json"):
        Tokenizer.from_hf_dir(folder)
