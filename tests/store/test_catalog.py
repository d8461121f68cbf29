"""create, copy, remove, list, show, verify and corrupt-blob detection on a real store."""
from __future__ import annotations

import os

import pytest

from conftest import snapshot, tiny_hf_files
from corral.errors import ModelNotFoundError, StoreError
from corral.store import copy, create, list_models, remove, resolve, show, verify


@pytest.fixture
def gguf_path(tmp_path, gguf_files):
    path = tmp_path / "models" / "tiny.gguf"
    path.parent.mkdir()
    path.write_bytes(gguf_files["Q4_K_M"])
    return path


@pytest.fixture
def hf_folder(tmp_path):
    folder = tmp_path / "models" / "tiny-hf"
    folder.mkdir(parents=True)
    for name, data in tiny_hf_files().items():
        (folder / name).write_bytes(data)
    return folder


def test_paths_resolve_without_importing(home, gguf_path, hf_folder):
    assert resolve(str(gguf_path)).kind == "gguf"
    assert resolve(hf_folder).kind == "hf"
    assert not home.exists()


def test_create_from_relative_gguf_path(home, gguf_path, gguf_files):
    entry = create("tiny:chat", "FROM ./tiny.gguf\nPARAMETER temperature 0.2\nSYSTEM Be brief.\n", gguf_path.parent)
    model = resolve("tiny:chat")
    assert model.kind == "gguf" and model.path.read_bytes() == gguf_files["Q4_K_M"]
    assert model.params == {"temperature": 0.2} and model.system == "Be brief."
    assert entry.details["family"] == "llama" and entry.details["quantization_level"] == "F32"


def test_create_from_store_name_inherits_and_overrides(home, gguf_path):
    create("base", "FROM tiny.gguf\nPARAMETER temperature 0.2\nPARAMETER num_ctx 128\nSYSTEM one\n", gguf_path.parent)
    create("derived", "FROM base\nPARAMETER temperature 0.9\nMESSAGE user hi\n", "/nonexistent")
    model = resolve("derived")
    assert model.params == {"temperature": 0.9, "num_ctx": 128}
    assert model.system == "one" and model.messages == [{"role": "user", "content": "hi"}]
    assert model.path == resolve("base").path  # same blob
    assert len(os.listdir(home / "blobs")) == 1


def test_create_from_hf_folder_makes_a_folder_of_links(home, hf_folder):
    create("tiny-hf", "FROM ./tiny-hf\n", hf_folder.parent)
    model = resolve("tiny-hf")
    assert model.kind == "hf"
    assert sorted(p.name for p in model.path.iterdir()) == [
        "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    assert (model.path / "model.safetensors").read_bytes() == (hf_folder / "model.safetensors").read_bytes()
    info = show("tiny-hf")
    assert info.model_info["architecture"] == "llama" and info.model_info["context_length"] == 128


@pytest.mark.parametrize("text, message", [
    ("FROM ./missing.gguf\n", "no such file"),
    ("FROM not-pulled:yet\n", "no such model in the store"),
    ("FROM ./tiny.gguf\nBOGUS x\n", "unknown instruction"),
    ("FROM ./tiny.gguf\nADAPTER ./x\n", "not supported"),
])
def test_bad_create_changes_nothing(home, gguf_path, text, message):
    create("existing", "FROM ./tiny.gguf\n", gguf_path.parent)
    before = snapshot(home)
    with pytest.raises(StoreError, match=message):
        create("new", text, gguf_path.parent)
    assert snapshot(home) == before


def test_failed_import_leaves_no_blob(home, hf_folder, monkeypatch):
    import importlib

    create_module = importlib.import_module("corral.store.create")  # the package exports a function of that name

    monkeypatch.setattr(create_module, "write_manifest", lambda *a: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        create("tiny-hf", "FROM ./tiny-hf\n", hf_folder.parent)
    assert not any(p.is_file() for p in home.rglob("*"))


def test_copy_list_remove(home, gguf_path):
    create("a", "FROM ./tiny.gguf\n", gguf_path.parent)
    copy("a", "b:v1")
    names = [m.name for m in list_models()]
    assert sorted(names) == ["a:latest", "b:v1"]
    entries = {m.name: m for m in list_models()}
    assert entries["a:latest"].digest == entries["b:v1"].digest
    assert entries["a:latest"].size == gguf_path.stat().st_size
    remove("a")
    assert resolve("b:v1").path.is_file()  # shared blob survives
    remove("b:v1")
    assert list_models() == []
    assert not any((home / "blobs").iterdir())
    assert not (home / "manifests").exists() or not any((home / "manifests").iterdir())


def test_remove_collects_folders(home, hf_folder):
    create("tiny-hf", "FROM ./tiny-hf\n", hf_folder.parent)
    resolve("tiny-hf")
    remove("tiny-hf")
    assert not any(p.exists() for p in (home / "folders").iterdir())


def test_copy_of_unknown_model_changes_nothing(home, gguf_path):
    create("a", "FROM ./tiny.gguf\n", gguf_path.parent)
    before = snapshot(home)
    with pytest.raises(ModelNotFoundError):
        copy("missing", "c")
    assert snapshot(home) == before


def test_corrupt_blob_is_detected_not_served(home, gguf_path):
    create("a", "FROM ./tiny.gguf\n", gguf_path.parent)
    verify("a")
    blob = next((home / "blobs").iterdir())
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        verify("a")
    blob.write_bytes(bytes(data[:-1]))
    with pytest.raises(StoreError, match="wrong size"):
        resolve("a")


def test_show(home, gguf_path):
    create("a", 'FROM ./tiny.gguf\nPARAMETER stop "<|end|>"\nLICENSE """MIT License"""\n', gguf_path.parent)
    info = show("a")
    assert info.model_info["architecture"] == "llama"
    assert info.model_info["context_length"] == 256
    assert info.details["parameter_size"] == str(32 * 8 + 8)
    assert info.parameters == {"stop": ["<|end|>"]}
    assert info.license == "MIT License"
    assert info.template == "{{ messages }}"  # from the GGUF metadata


def test_bundled_model_resolves_by_name_unless_the_store_has_one(home, gguf_path):
    from corral.store.default_model import mini_model_path

    assert resolve("corral-mini").path == mini_model_path()
    assert resolve("corral-mini:latest").path == mini_model_path()
    with pytest.raises(ModelNotFoundError):
        resolve("corral-mini:other")
    create("corral-mini", f"FROM {gguf_path}")
    assert resolve("corral-mini").path != mini_model_path()
