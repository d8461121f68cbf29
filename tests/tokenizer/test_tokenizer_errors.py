"""Errors a user can cause with tokenizer files: typed, naming the file, saying what to do."""
from __future__ import annotations

import json
import logging
import shutil

import pytest

from corral.errors import TokenizerError
from corral.loader.gguf_file import GGUFFile
from corral.tokenizer import Tokenizer
from corral.tokenizer.gguf_loader import load_gguf_tokenizer
from tokenizer_files import write_vocab_gguf


def test_folder_without_tokenizer(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TokenizerError) as err:
        Tokenizer.from_hf_dir(tmp_path)
    assert err.value.path == str(tmp_path) and "tokenizer.json" in err.value.message


def test_missing_folder(tmp_path):
    with pytest.raises(TokenizerError, match="not a folder"):
        Tokenizer.from_hf_dir(tmp_path / "nope")


def test_corrupt_tokenizer_files(llama3_dir, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(llama3_dir, folder)
    (folder / "tokenizer.json").write_text('{"model": ')
    with pytest.raises(TokenizerError, match="tokenizer.json"):
        Tokenizer.from_hf_dir(folder)
    shutil.copy(llama3_dir / "tokenizer.json", folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="tokenizer_config.json"):
        Tokenizer.from_hf_dir(folder)
    (folder / "tokenizer_config.json").unlink()
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.model").write_bytes(b"\xff\xff\xff")
    with pytest.raises(TokenizerError, match="SentencePiece"):
        Tokenizer.from_hf_dir(folder)


def _metadata(llama3_dir, tmp_path):
    return dict(GGUFFile(write_vocab_gguf(llama3_dir, tmp_path / "vocab.gguf")).metadata)


def test_unknown_gguf_tokenizer_model(llama3_dir, tmp_path):
    metadata = _metadata(llama3_dir, tmp_path)
    metadata["tokenizer.ggml.model"] = "rwkv"
    with pytest.raises(TokenizerError, match="'rwkv' is not supported.*'gpt2'.*'llama'"):
        load_gguf_tokenizer(metadata, "model.gguf")


def test_gguf_without_tokenizer(llama3_dir, tmp_path):
    metadata = {k: v for k, v in _metadata(llama3_dir, tmp_path).items() if not k.startswith("tokenizer.")}
    with pytest.raises(TokenizerError, match="no tokenizer"):
        load_gguf_tokenizer(metadata, "model.gguf")
    metadata = _metadata(llama3_dir, tmp_path)
    del metadata["tokenizer.ggml.merges"]
    with pytest.raises(TokenizerError, match="merges"):
        load_gguf_tokenizer(metadata, "model.gguf")


def test_unknown_pre_tokenizer_falls_back_to_default_with_warning(llama3_dir, tmp_path, caplog):
    metadata = _metadata(llama3_dir, tmp_path)
    metadata["tokenizer.ggml.pre"] = "some-future-model"
    with caplog.at_level(logging.WARNING):
        tok = load_gguf_tokenizer(metadata, "model.gguf")
    assert "some-future-model" in caplog.text and "default" in caplog.text
    assert tok.decode(tok.encode("Hello, world! 123")) == "Hello, world! 123"


def test_export_needs_a_tokenizer(tmp_path):
    import gguf

    from corral.tokenizer.gguf_vocab import add_tokenizer_to_gguf

    writer = gguf.GGUFWriter(tmp_path / "x.gguf", "llama")
    with pytest.raises(TokenizerError, match="no tokenizer.json or tokenizer.model"):
        add_tokenizer_to_gguf(writer, tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordPiece"}, "decoder": None}))
    with pytest.raises(TokenizerError, match="cannot convert"):
        add_tokenizer_to_gguf(writer, tmp_path)


def test_truncation_in_tokenizer_json_is_ignored(llama3_dir, tmp_path):
    folder = tmp_path / "truncating"
    shutil.copytree(llama3_dir, folder)
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    spec["truncation"] = {"direction": "Right", "max_length": 4, "strategy": "LongestFirst", "stride": 0}
    (folder / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    assert len(Tokenizer.from_path(folder).encode("one two three four five six")) > 4
