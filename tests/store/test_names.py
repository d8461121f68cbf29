"""Model names: accepted spellings, where they are stored, and clear errors for bad ones."""
from __future__ import annotations

import pytest

from conftest import snapshot
from corral.errors import ModelNotFoundError, StoreError
from corral.store import copy, parse_name, remove, resolve, show


@pytest.mark.parametrize("text, path, canonical", [
    ("qwen2.5:0.5b-q4_k_m", "local/library/qwen2.5/0.5b-q4_k_m", "qwen2.5:0.5b-q4_k_m"),
    ("mymodel", "local/library/mymodel/latest", "mymodel:latest"),
    ("hf.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M", "hf.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/Q4_K_M",
     "hf.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M"),
    ("huggingface.co/org/repo", "hf.co/org/repo/latest", "hf.co/org/repo:latest"),
    ("Qwen/Qwen2.5-0.5B-Instruct", "huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/latest", "Qwen/Qwen2.5-0.5B-Instruct:latest"),
])
def test_valid_names(text, path, canonical):
    name = parse_name(text)
    assert name.manifest_relpath().as_posix() == path
    assert str(name) == canonical
    assert parse_name(str(name)) == name


@pytest.mark.parametrize("text", [
    "", "  ", "a/../b", "../x", "..", "a//b", "/abs", "a/", "x:", "x:y:z", "x:..", "a b", "a\\b",
    "a/b/c/d", "example.com/a/b", "-lead", ".hidden", "x:../../etc", "na\x00me", "ünïcode",
])
def test_invalid_names_are_store_errors(text):
    with pytest.raises(StoreError):
        parse_name(text)


@pytest.mark.parametrize("op", [
    lambda n: remove(n), lambda n: copy("a", n), lambda n: copy(n, "a"), lambda n: show(n),
])
def test_bad_names_change_nothing(home, op):
    home.mkdir()
    before = snapshot(home)
    with pytest.raises(StoreError, match="model name"):
        op("a/../../b")
    assert snapshot(home) == before


def test_unknown_name_is_model_not_found(home):
    with pytest.raises(ModelNotFoundError, match="not found"):
        resolve("nothing:here")
    with pytest.raises(ModelNotFoundError):
        remove("nothing")


def test_missing_path_is_model_not_found(home, tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such file"):
        resolve(str(tmp_path / "absent.gguf"))
