"""Pulling from a loopback fake Hub: quant tags, safetensors folders, resume, hash and network failures."""
from __future__ import annotations

import hashlib
import json

import pytest

from conftest import GGUF_REPO, HF_REPO, snapshot
from corral.errors import StoreError
from corral.store import ProgressEvent, list_models, pull, resolve


def test_pull_gguf_by_quant_tag(home, hub, gguf_files):
    events: list[ProgressEvent] = []
    entry = pull(f"hf.co/{GGUF_REPO}:q8_0", events.append)
    assert entry.name == f"hf.co/{GGUF_REPO}:q8_0"
    model = resolve(f"hf.co/{GGUF_REPO}:q8_0")
    assert model.kind == "gguf"
    assert model.path.read_bytes() == gguf_files["Q8_0"]
    statuses = [e.status for e in events]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    done = [e for e in events if e.total and e.completed == e.total]
    assert done and done[-1].digest == "sha256:" + hashlib.sha256(gguf_files["Q8_0"]).hexdigest()
    assert entry.details["family"] == "llama"


def test_pull_default_quant_is_q4_k_m(home, hub, gguf_files):
    pull(f"hf.co/{GGUF_REPO}")
    assert resolve(f"hf.co/{GGUF_REPO}:latest").path.read_bytes() == gguf_files["Q4_K_M"]


def test_default_quant_falls_back_by_preference(home, hub, gguf_files):
    repo = hub.add_repo("acme/other-GGUF", {"m-F16.gguf": gguf_files["F16"], "m-Q8_0.gguf": gguf_files["Q8_0"]})
    assert repo
    pull("hf.co/acme/other-GGUF")
    assert resolve("hf.co/acme/other-GGUF").path.read_bytes() == gguf_files["Q8_0"]


def test_missing_quant_lists_available_and_changes_nothing(home, hub):
    pull(f"hf.co/{GGUF_REPO}:Q8_0")
    before = snapshot(home)
    with pytest.raises(StoreError, match=r"no Q2_K quantization; available: Q4_K_M, Q8_0, F16"):
        pull(f"hf.co/{GGUF_REPO}:Q2_K")
    assert snapshot(home) == before


def test_pull_safetensors_repo_materializes_a_folder(home, hub):
    entry = pull(HF_REPO)
    model = resolve(HF_REPO)
    assert model.kind == "hf" and model.path.is_dir()
    names = sorted(p.name for p in model.path.iterdir())
    assert names == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    files = hub.repos[HF_REPO].files
    for name in names:
        assert (model.path / name).read_bytes() == files[name]
    assert json.loads((model.path / "config.json").read_text())["model_type"] == "llama"
    assert entry.details["parameter_size"] == str(16 * 8 + 8)
    assert [m.name for m in list_models()] == [f"{HF_REPO}:latest"]


def test_two_names_share_one_blob(home, hub):
    pull(f"hf.co/{GGUF_REPO}")
    pull(f"hf.co/{GGUF_REPO}:Q4_K_M")
    assert len(list((home / "blobs").iterdir())) == 1
    assert len(hub.downloads("tiny-q4_k_m.gguf")) == 1


def test_cut_download_is_resumed_with_a_range_request(home, hub, gguf_files):
    hub.cut_once.add(f"{GGUF_REPO}/tiny-q8_0.gguf")
    pull(f"hf.co/{GGUF_REPO}:Q8_0")
    gets = hub.downloads("tiny-q8_0.gguf")
    assert len(gets) == 2
    assert gets[0][2] is None
    assert gets[1][2] == f"bytes={len(gguf_files['Q8_0']) // 2}-"
    assert resolve(f"hf.co/{GGUF_REPO}:Q8_0").path.read_bytes() == gguf_files["Q8_0"]
    assert not any((home / "partial").iterdir())


def test_cut_download_without_retries_resumes_on_the_next_pull(home, hub, gguf_files):
    hub.cut_once.add(f"{GGUF_REPO}/tiny-q8_0.gguf")
    with pytest.raises(StoreError, match="run the pull again to resume"):
        pull(f"hf.co/{GGUF_REPO}:Q8_0", retries=0)
    assert list_models() == []
    partials = list((home / "partial").iterdir())
    assert len(partials) == 1 and partials[0].stat().st_size == len(gguf_files["Q8_0"]) // 2
    pull(f"hf.co/{GGUF_REPO}:Q8_0")
    assert hub.downloads("tiny-q8_0.gguf")[-1][2] == f"bytes={len(gguf_files['Q8_0']) // 2}-"
    assert resolve(f"hf.co/{GGUF_REPO}:Q8_0").path.read_bytes() == gguf_files["Q8_0"]


def test_wrong_hash_is_rejected_and_changes_nothing(home, hub, gguf_files):
    hub.repos[GGUF_REPO].advertise["tiny-q8_0.gguf"] = gguf_files["F16"][: len(gguf_files["Q8_0"])] + b""
    before = snapshot(home)
    with pytest.raises(StoreError, match="does not match the Hub"):
        pull(f"hf.co/{GGUF_REPO}:Q8_0")
    assert snapshot(home) == before


def test_wrong_hash_of_a_later_file_keeps_earlier_blobs_out_of_the_store(home, hub):
    files = hub.repos[HF_REPO].files
    hub.repos[HF_REPO].advertise["model.safetensors"] = files["model.safetensors"][::-1]
    with pytest.raises(StoreError, match="does not match the Hub"):
        pull(HF_REPO)
    assert list_models() == []
    assert not (home / "blobs").exists() or not any((home / "blobs").iterdir())
    assert not (home / "manifests").exists() or not any((home / "manifests").rglob("*"))


def test_unknown_repo(home, hub):
    before = snapshot(home)
    with pytest.raises(StoreError, match="acme/nope not found"):
        pull("hf.co/acme/nope")
    assert snapshot(home) == before


def test_unknown_revision(home, hub):
    with pytest.raises(StoreError, match="no revision 'v9'"):
        pull(f"{HF_REPO}:v9")


def test_unreachable_hub(home, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    before = snapshot(home)
    with pytest.raises(StoreError, match="cannot reach the Hugging Face Hub"):
        pull(f"hf.co/{GGUF_REPO}")
    assert snapshot(home) == before


def test_local_names_cannot_be_pulled(home, hub):
    with pytest.raises(StoreError, match="local name"):
        pull("qwen2.5:0.5b")


def test_full_disk_is_reported_before_downloading(home, hub, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100, 100, 0))
    with pytest.raises(StoreError, match="disk full"):
        pull(f"hf.co/{GGUF_REPO}")
    assert list_models() == []
    assert hub.downloads("tiny-q4_k_m.gguf") == []


def test_disk_filling_up_mid_download_removes_the_partial_file(home, hub, monkeypatch):
    import errno

    import corral.store.download as download

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download.os, "fsync", no_space)
    with pytest.raises(StoreError, match="disk full"):
        pull(f"hf.co/{GGUF_REPO}")
    assert not any((home / "partial").iterdir())
    assert list_models() == []


def test_split_gguf_is_pulled_as_one_model_of_parts(home, hub, gguf_files):
    parts = {
        "Q8_0/big-Q8_0-00002-of-00002.gguf": b"second part",
        "Q8_0/big-Q8_0-00001-of-00002.gguf": gguf_files["Q8_0"],
        "big-Q4_K_M-00001-of-00002.gguf": gguf_files["Q4_K_M"],  # incomplete: never chosen
    }
    hub.add_repo("acme/big-GGUF", parts)
    entry = pull("hf.co/acme/big-GGUF")
    assert entry.size == len(gguf_files["Q8_0"]) + len(b"second part")
    model = resolve("hf.co/acme/big-GGUF")
    assert model.kind == "gguf" and model.path.name == "big-Q8_0-00001-of-00002.gguf"
    assert model.path.read_bytes() == gguf_files["Q8_0"]
    assert (model.path.parent / "big-Q8_0-00002-of-00002.gguf").read_bytes() == b"second part"


def test_hub_token_is_sent(home, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    seen = []
    original = hub._server.RequestHandlerClass.do_GET

    def spy(handler):
        seen.append(handler.headers.get("Authorization"))
        original(handler)

    monkeypatch.setattr(hub._server.RequestHandlerClass, "do_GET", spy)
    pull(f"hf.co/{GGUF_REPO}")
    assert seen and all(h == "Bearer hf_secret" for h in seen)


def test_failed_pull_parks_finished_files_for_the_next_pull(home, hub, gguf_files):
    hub.add_repo("acme/big-GGUF", {
        "big-Q8_0-00001-of-00002.gguf": gguf_files["Q8_0"],
        "big-Q8_0-00002-of-00002.gguf": gguf_files["F16"],
    })
    hub.cut_once.add("acme/big-GGUF/big-Q8_0-00002-of-00002.gguf")
    with pytest.raises(StoreError):
        pull("hf.co/acme/big-GGUF", retries=0)
    assert not (home / "blobs").exists() or not any((home / "blobs").iterdir())
    pull("hf.co/acme/big-GGUF")
    assert len(hub.downloads("big-Q8_0-00001-of-00002.gguf")) == 1  # not fetched again
    assert resolve("hf.co/acme/big-GGUF").path.read_bytes() == gguf_files["Q8_0"]


def test_concurrent_pulls_of_one_file_download_it_once(home, hub, gguf_files):
    import threading

    errors: list[BaseException] = []

    def one():
        try:
            pull(f"hf.co/{GGUF_REPO}:Q8_0")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert resolve(f"hf.co/{GGUF_REPO}:Q8_0").path.read_bytes() == gguf_files["Q8_0"]
    assert len(hub.downloads("tiny-q8_0.gguf")) == 1
    assert not any((home / "partial").iterdir())
