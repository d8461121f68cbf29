"""The store says what is damaged (`list` marks it instead of dropping it) and `cp` never
overwrites a model unless told to."""
from __future__ import annotations

import pytest

from conftest import snapshot
from corral.cli.main import main
from corral.store import copy, create, list_models, remove, resolve
from corral.store.catalog import ModelExistsError


@pytest.fixture
def two_models(home, tmp_path, gguf_files):
    (tmp_path / "a.gguf").write_bytes(gguf_files["Q8_0"])
    (tmp_path / "b.gguf").write_bytes(gguf_files["F16"])
    create("a", "FROM ./a.gguf\n", tmp_path)
    create("b", "FROM ./b.gguf\n", tmp_path)
    create("sound", "FROM a\n", tmp_path)
    return home


def _blob_of(name: str):
    return resolve(name).path


def test_list_marks_a_missing_blob_and_a_corrupt_manifest(two_models, capsys):
    home = two_models
    _blob_of("b").unlink()
    (home / "manifests" / "local" / "library" / "a" / "latest").write_text('{"kind": "gguf", "layers": [')
    entries = {e.name: e for e in list_models()}
    assert set(entries) == {"a:latest", "b:latest", "sound:latest"}
    assert "manifest is damaged" in entries["a:latest"].damage
    assert "missing" in entries["b:latest"].damage
    assert entries["sound:latest"].damage is None

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.split("\n\n")[0].splitlines()[1:]}
    assert rows["a:latest"][1] == "DAMAGED" and rows["b:latest"][1] == "DAMAGED" and rows["sound:latest"][1] != "DAMAGED"
    assert "Damaged models" in out and "a:latest: the manifest is damaged" in out and "b:latest: blob sha256:" in out

    remove("a")  # a damaged model can still be removed by name
    remove("b")
    assert [e.name for e in list_models()] == ["sound:latest"]


def test_list_marks_a_blob_of_the_wrong_size(two_models):
    blob = _blob_of("b")
    blob.write_bytes(blob.read_bytes()[:-10])
    entry = next(e for e in list_models() if e.name == "b:latest")
    assert "bytes, expected" in entry.damage


def test_cp_refuses_to_overwrite_unless_forced(two_models, capsys):
    before = snapshot(two_models)
    with pytest.raises(ModelExistsError, match="already exists"):
        copy("b", "a")
    assert main(["cp", "b", "a"]) == 1
    assert "already exists; pass --force" in capsys.readouterr().err
    assert snapshot(two_models) == before
    assert main(["cp", "--force", "b", "a"]) == 0
    assert resolve("a").path == resolve("b").path


def test_rm_with_no_server_or_a_bad_server_address_still_removes(two_models, monkeypatch, capsys):
    for host in ("127.0.0.1:9", "http://exa mple:99x"):
        monkeypatch.setenv("CORRAL_HOST", host)
        name = "a" if host.startswith("127") else "b"
        assert main(["rm", name]) == 0 and f"deleted '{name}'" in capsys.readouterr().out
    assert [e.name for e in list_models()] == ["sound:latest"]
    assert main(["ps"]) == 1 and "CORRAL_HOST" in capsys.readouterr().err
