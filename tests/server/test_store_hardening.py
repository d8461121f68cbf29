"""The store's routes on a real server refuse what is not a model, never overwrite on copy, list
damaged models as damaged, and a model removed from the store (by `corral rm`) is unloaded.
A model named on `corral serve` stays pinned after its requests."""
from __future__ import annotations

import os

import httpx
import pytest
from server_harness import ENGINE_KWARGS, serve_in_thread
from store_routes_harness import ndjson, snapshot

from corral import store
from corral.cli.main import main


@pytest.fixture
def home(tmp_path, monkeypatch):
    root = tmp_path / "corral-home"
    monkeypatch.setenv("CORRAL_HOME", str(root))
    return root


def _serve(home, models=()):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    return serve_in_thread(create_app(list(models), source=StoreModelSource(home), engine_kwargs=ENGINE_KWARGS))


@pytest.fixture
def url(home):
    url, stop = _serve(home)
    yield url
    stop()


@pytest.fixture
def not_models(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "x.gguf").write_text("plain text, named like a model\n")
    os.mkfifo(folder / "fifo.gguf")
    return folder


def test_api_create_refuses_files_that_are_not_models(url, home, tiny_models, not_models):
    store.create("base", f"FROM {tiny_models('qwen2', 'Q8_0')}\n", None, home=home)
    before = snapshot(home)
    cases = [
        ({"from": "/etc/shadow"}, "not a GGUF file"),
        ({"from": "/etc/passwd"}, "not a GGUF file"),
        ({"from": "/proc/self/environ"}, "under /proc"),
        ({"from": "/dev/zero"}, "under /dev"),
        ({"from": str(not_models / "fifo.gguf")}, "FIFO"),
        ({"from": str(not_models / "x.gguf")}, "not a GGUF file"),
        ({"from": "../../../../../etc/passwd"}, "relative path"),
        ({"modelfile": "FROM ../../../../../etc/passwd\n"}, "relative path"),
        ({"modelfile": "FROM etc/shadow\n"}, "no such model"),
    ]
    for body, words in cases:
        for stream in (False, True):
            r = httpx.post(url + "/api/create", json={"model": "stolen", "stream": stream, **body}, timeout=30)
            assert r.status_code == 400, (body, r.text)
            assert set(r.json()) == {"error"} and words in r.json()["error"], (body, r.text)
            assert snapshot(home) == before


def test_api_create_from_an_absolute_model_path_still_works(url, home, tiny_models):
    r = httpx.post(url + "/api/create", json={"model": "ok", "from": str(tiny_models("qwen2", "Q8_0"))}, timeout=60)
    assert r.status_code == 200 and ndjson(r)[-1] == {"status": "success"}


def test_api_copy_refuses_to_overwrite(url, home, tiny_models):
    gguf = tiny_models("qwen2", "Q8_0")
    store.create("a", f"FROM {gguf}\n", None, home=home)
    store.create("b", f"FROM {gguf}\nSYSTEM other\n", None, home=home)
    before = snapshot(home)
    r = httpx.post(url + "/api/copy", json={"source": "a", "destination": "b"})
    assert r.status_code == 409 and "already exists" in r.json()["error"] and "/api/delete" in r.json()["error"]
    assert snapshot(home) == before


def test_api_tags_marks_damaged_models(url, home, tiny_models):
    store.create("sound", f"FROM {tiny_models('qwen2', 'Q8_0')}\n", None, home=home)
    store.create("broken", f"FROM {tiny_models('llama31', 'Q8_0')}\n", None, home=home)
    store.resolve("broken", home=home).path.unlink()
    (home / "manifests" / "local" / "library" / "garbled").mkdir(parents=True)
    (home / "manifests" / "local" / "library" / "garbled" / "latest").write_text("{not json")
    models = {m["name"]: m for m in httpx.get(url + "/api/tags").json()["models"]}
    assert set(models) == {"sound:latest", "broken:latest", "garbled:latest"}
    assert "damaged" not in models["sound:latest"]
    assert "missing" in models["broken:latest"]["damaged"]
    assert "manifest is damaged" in models["garbled:latest"]["damaged"]


def test_cli_rm_of_a_loaded_model_unloads_it_from_the_server(url, home, tiny_models, monkeypatch, capsys):
    store.create("base", f"FROM {tiny_models('qwen2', 'Q8_0')}\n", None, home=home)
    assert httpx.post(url + "/api/generate", json={"model": "base"}, timeout=120).json()["done_reason"] == "load"
    assert [m["name"] for m in httpx.get(url + "/api/ps").json()["models"]] == ["base"]
    monkeypatch.setenv("CORRAL_HOST", url)
    assert main(["rm", "base"]) == 0 and "deleted 'base'" in capsys.readouterr().out
    assert httpx.get(url + "/api/ps").json()["models"] == []
    r = httpx.post(url + "/api/generate", json={"model": "base", "prompt": "hi"}, timeout=60)
    assert r.status_code == 404


def test_cli_cp_force_onto_a_loaded_model_unloads_it(url, home, tiny_models, monkeypatch, capsys):
    store.create("base", f"FROM {tiny_models('qwen2', 'Q8_0')}\n", None, home=home)
    store.create("other", "FROM base\nSYSTEM other\n", None, home=home)
    assert httpx.post(url + "/api/generate", json={"model": "base"}, timeout=120).json()["done_reason"] == "load"
    monkeypatch.setenv("CORRAL_HOST", url)
    assert main(["cp", "--force", "other", "base"]) == 0
    assert httpx.get(url + "/api/ps").json()["models"] == []
    assert store.resolve("base", home=home).system == "other"


def test_a_model_named_on_serve_stays_pinned_after_requests(home, tiny_models):
    store.create("base", f"FROM {tiny_models('qwen2', 'Q8_0')}\n", None, home=home)
    url, stop = _serve(home, ["base"])
    try:
        for keep_alive in (None, "1s", 0):
            body = {"model": "base", "prompt": "hi", "stream": False, "options": {"num_predict": 1}}
            if keep_alive is not None:
                body["keep_alive"] = keep_alive
            assert httpx.post(url + "/api/generate", json=body, timeout=120).status_code == 200
            running = httpx.get(url + "/api/ps").json()["models"]
            assert [m["name"] for m in running] == ["base"] and running[0]["expires_at"].startswith("2318"), keep_alive
        assert httpx.post(url + "/api/generate", json={"model": "base", "keep_alive": 0}).json()["done_reason"] == "unload"
        assert httpx.get(url + "/api/ps").json()["models"] == []
    finally:
        stop()


@pytest.mark.parametrize("path, body", [
    ("/api/create", '{"model": "x", "modelfile": "FROM /\\ud800\\n", "stream": false}'),
    ("/api/create", '{"model": "x", "from": "/\\ud800", "stream": false}'),
    ("/api/create", '{"model": "x", "modelfile": "FROM \\ud800\\n"}'),
    ("/api/copy", '{"source": "\\ud800", "destination": "y"}'),
    ("/api/generate", '{"model": "/\\ud800", "prompt": "x"}'),
])
def test_a_lone_surrogate_in_a_name_or_path_is_a_client_error(url, home, path, body):
    r = httpx.post(url + path, content=body, headers={"content-type": "application/json"}, timeout=30)
    error = r.json()["error"]
    # The error names the offending character, escaped or by code point.
    assert 400 <= r.status_code < 500 and ("\\ud800" in error or "U+D800" in error), r.text
