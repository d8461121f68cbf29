"""`create` takes model files only, by content: never system files, devices, FIFOs or text named
.gguf, and relative paths only against a Modelfile's folder. Blobs are the store's own 0644 files."""
from __future__ import annotations

import os
import stat
import threading

import pytest

from conftest import snapshot, tiny_hf_files
from corral.errors import StoreError
from corral.store import create, resolve


@pytest.fixture
def models(tmp_path, gguf_files):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "tiny.gguf").write_bytes(gguf_files["Q8_0"])
    (folder / "notes.gguf").write_text("these are not weights\n")
    os.mkfifo(folder / "pipe.gguf")
    (folder / "to-proc.gguf").symlink_to("/proc/self/environ")
    hf = folder / "fake-hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    (hf / "model.safetensors").write_text("not a safetensors file")
    return folder


@pytest.mark.parametrize("from_, words", [
    ("/etc/passwd", "not a GGUF file"),
    ("/proc/self/environ", "under /proc"),
    ("/dev/null", "under /dev"),
    ("/sys", "under /sys"),
    ("./notes.gguf", "not a GGUF file"),
    ("./pipe.gguf", "a FIFO"),
    ("./to-proc.gguf", "under /proc"),
    ("./fake-hf", "not a safetensors file"),
    ("../../../../../../../../etc/passwd", "not a GGUF file"),
])
def test_create_refuses_what_is_not_a_model(home, models, from_, words):
    create("existing", "FROM ./tiny.gguf\n", models)
    before = snapshot(home)
    done = threading.Event()
    result: list[BaseException] = []

    def attempt():  # a FIFO must be refused, never opened for a blocking read
        try:
            create("x", f"FROM {from_}\n", models)
        except BaseException as e:
            result.append(e)
        done.set()

    threading.Thread(target=attempt, daemon=True).start()
    assert done.wait(20), f"create FROM {from_} hangs"
    assert len(result) == 1 and isinstance(result[0], StoreError), result
    assert words in result[0].message
    assert snapshot(home) == before


@pytest.mark.parametrize("from_", ["./tiny.gguf", "tiny.gguf", "../models/tiny.gguf", "etc/passwd", "~\x00/x",
                                   "~nosuchuser/x.gguf", "a/\ud800.gguf"])
def test_without_a_base_folder_relative_paths_are_refused(home, models, from_, monkeypatch):
    monkeypatch.chdir(models)  # even where the path would exist, nothing resolves against cwd or "/"
    with pytest.raises(StoreError, match="relative path|no such model in the store|invalid"):
        create("x", f"FROM {from_}\n", None)
    assert not home.exists()


def test_an_absolute_path_works_without_a_base_folder(home, models):
    create("x", f"FROM {models / 'tiny.gguf'}\n", None)
    assert resolve("x").kind == "gguf"


def test_blobs_are_0644_whatever_the_source_mode(home, models, tmp_path):
    source = models / "tiny.gguf"
    os.chmod(source, 0o400)
    hf = tmp_path / "hf"
    hf.mkdir()
    for name, data in tiny_hf_files().items():
        (hf / name).write_bytes(data)
        os.chmod(hf / name, 0o600)
    create("a", "FROM ./tiny.gguf\n", models)
    create("b", f"FROM {hf}\n", None)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (home / "blobs").iterdir()}
    assert modes == {0o644}


def test_resolving_a_path_refuses_fifos_and_system_files(home, models):
    for path in (models / "pipe.gguf", "/proc/self/environ", "/dev/zero"):
        with pytest.raises(StoreError):
            resolve(str(path))


def test_a_linked_gguf_keeps_the_link_name(home, models, tmp_path):
    link = tmp_path / "named.gguf"
    link.symlink_to(models / "tiny.gguf")
    entry = create("linked", f"FROM {link}\n", None)
    assert entry.name == "linked:latest"
    from corral.store.layout import StoreLayout
    from corral.store.manifest import read_manifest
    from corral.store.names import parse_name

    assert [l.filename for l in read_manifest(StoreLayout.at(), parse_name("linked")).layers] == ["named.gguf"]
