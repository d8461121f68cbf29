"""/api/pull, /api/delete, /api/copy, /api/create and the store listings on a real server.

The store is a temporary folder, the Hub a loopback fake serving a tiny real GGUF. Every bad
request must answer a 4xx/5xx with an Ollama error body and leave the store's files as they were.
"""
from __future__ import annotations

import threading

import httpx
import pytest
from server_harness import ENGINE_KWARGS, serve_in_thread, wait_until
from store_routes_harness import GGUF_REPO, ndjson, snapshot, start_fake_hub

PULL_NAME = f"hf.co/{GGUF_REPO}:Q8_0"


@pytest.fixture
def home(tmp_path):
    return tmp_path / "corral-home"


@pytest.fixture
def hub(monkeypatch, tiny_models):
    hub = start_fake_hub(monkeypatch, tiny_models("qwen2", "Q8_0"))
    yield hub
    hub.stop()


@pytest.fixture
def url(home):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    app = create_app([], source=StoreModelSource(home), engine_kwargs=ENGINE_KWARGS)
    url, stop = serve_in_thread(app)
    yield url
    stop()


def _names(url: str) -> set[str]:
    return {m["name"] for m in httpx.get(url + "/api/tags").json()["models"]}


def test_pull_streams_ollama_progress_and_lists_the_model(url, hub):
    r = httpx.post(url + "/api/pull", json={"model": PULL_NAME}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = ndjson(r)
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    pulling = [line for line in lines if line["status"].startswith("pulling sha256") or
               (line["status"].startswith("pulling ") and "digest" in line)]
    size = len(hub.repos[GGUF_REPO].files["tiny-q8_0.gguf"])
    assert pulling and pulling[-1]["total"] == size and pulling[-1]["completed"] == size
    assert pulling[-1]["digest"].startswith("sha256:") and pulling[-1]["status"] == "pulling " + pulling[-1]["digest"][7:19]
    assert set(lines[0]) == {"status"} and set(lines[-1]) == {"status"}
    assert PULL_NAME in _names(url)
    assert PULL_NAME in {m["id"] for m in httpx.get(url + "/v1/models").json()["data"]}


def test_pull_without_streaming_answers_one_object(url, hub):
    r = httpx.post(url + "/api/pull", json={"name": PULL_NAME, "stream": False, "insecure": True}, timeout=60)
    assert r.status_code == 200 and r.json() == {"status": "success"}
    assert PULL_NAME in _names(url)


def test_official_client_pulls_deletes_and_copies(url, hub):
    import ollama

    client = ollama.Client(host=url)
    parts = list(client.pull(PULL_NAME, stream=True))
    assert parts[-1].status == "success"
    assert client.copy(PULL_NAME, "mine:v1").status == "success"
    assert {"mine:v1", PULL_NAME} <= {m.model for m in client.list().models}
    assert client.delete(PULL_NAME).status == "success"
    assert {m.model for m in client.list().models} == {"mine:v1"}
    with pytest.raises(ollama.ResponseError) as e:
        client.delete(PULL_NAME)
    assert e.value.status_code == 404


@pytest.mark.parametrize("body,status,words", [
    ({"model": f"hf.co/{GGUF_REPO}:Q2_K"}, 404, "no Q2_K quantization"),
    ({"model": "hf.co/acme/missing-GGUF"}, 404, "not found"),
    ({"model": "hf.co/acme/../etc"}, 400, "invalid"),
    ({"model": "bad name!"}, 400, ""),
    ({"model": "localname"}, 400, "local name"),
    ({}, 400, "model"),
])
@pytest.mark.parametrize("stream", [True, False])
def test_bad_pulls_are_http_errors_and_change_nothing(url, hub, home, body, status, words, stream):
    before = snapshot(home)
    r = httpx.post(url + "/api/pull", json={**body, "stream": stream}, timeout=60)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and words in r.json()["error"]
    assert snapshot(home) == before


def test_unreachable_hub_is_a_bad_gateway(url, home, monkeypatch):
    import huggingface_hub.constants

    from server_harness import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HF_ENDPOINT", dead)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", dead)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    r = httpx.post(url + "/api/pull", json={"model": PULL_NAME}, timeout=60)
    assert r.status_code == 502 and "cannot reach" in r.json()["error"]
    assert snapshot(home) == {}


def test_a_failure_after_the_stream_began_is_the_last_line(url, hub, home):
    hub.repos[GGUF_REPO].advertise["tiny-q8_0.gguf"] = b"something else"
    r = httpx.post(url + "/api/pull", json={"model": PULL_NAME}, timeout=60)
    assert r.status_code == 200
    lines = ndjson(r)
    assert "does not match the Hub" in lines[-1]["error"] and PULL_NAME not in _names(url)
    assert not (home / "manifests").exists() or not any((home / "manifests").rglob("*"))


def test_client_leaving_mid_pull_leaves_no_model(url, hub, home, monkeypatch):
    """A two-part pull whose client leaves after the first part: the second part's first progress
    report raises, the pull rolls back, and the finished first part is parked in partial/."""
    import sys

    import corral.store  # noqa: F401
    pull_module = sys.modules["corral.store.pull"]  # the package's `pull` attribute is the function
    hub.add_repo("acme/split-GGUF", {"t-Q8_0-00001-of-00002.gguf": b"first part" * 1000,
                                     "t-Q8_0-00002-of-00002.gguf": b"second part" * 1000})
    real = pull_module.download_file
    calls, gate, cancelled = [], threading.Event(), []

    def gated(client, listing, remote, layout, on_progress, retries=3):
        calls.append(remote.path)
        if len(calls) == 2:
            assert gate.wait(30)
            for _ in range(400):  # a report raises once the server has seen the client leave
                try:
                    on_progress(pull_module.ProgressEvent("pulling " + remote.path))
                except Exception as e:
                    cancelled.append(e)
                    raise
                threading.Event().wait(0.05)
        return real(client, listing, remote, layout, on_progress, retries=retries)

    monkeypatch.setattr(pull_module, "download_file", gated)
    with httpx.stream("POST", url + "/api/pull", json={"model": "hf.co/acme/split-GGUF"}, timeout=60) as r:
        for line in r.iter_lines():
            if '"verifying sha256 digest"' in line:
                break
    gate.set()
    assert wait_until(lambda: bool(cancelled), timeout_s=30)
    assert type(cancelled[0]).__name__ == "StoreJobCancelled"
    # the name is never written; the finished part goes back to partial/ for the next pull to resume
    assert wait_until(lambda: not any((home / "blobs").glob("*")))
    assert not [p for p in (home / "manifests").rglob("*") if p.is_file()]
    assert any((home / "partial").iterdir())
    assert "hf.co/acme/split-GGUF:latest" not in _names(url)


def _create_local(url: str, gguf_path, name: str = "base", **extra) -> httpx.Response:
    return httpx.post(url + "/api/create", json={"model": name, "from": str(gguf_path), "stream": False, **extra},
                      timeout=60)


def test_create_json_form_then_show_and_copy(url, tiny_models, home):
    gguf = tiny_models("qwen2", "Q8_0")
    r = httpx.post(url + "/api/create", json={
        "model": "tiny", "from": str(gguf), "system": "You are terse.",
        "parameters": {"temperature": 0, "num_predict": 8, "stop": ["<|im_end|>", "END"]},
        "messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}],
        "license": "MIT",
    }, timeout=60)
    assert r.status_code == 200
    statuses = [line["status"] for line in ndjson(r)]
    assert statuses[0] == "parsing modelfile" and statuses[-2:] == ["writing manifest", "success"]
    from corral import store

    resolved = store.resolve("tiny", home=home)
    assert resolved.system == "You are terse." and resolved.messages[1] == {"role": "assistant", "content": "hi"}
    assert resolved.params == {"temperature": 0.0, "num_predict": 8, "stop": ["<|im_end|>", "END"]}
    assert store.show("tiny", home=home).license == "MIT"
    assert httpx.post(url + "/api/copy", json={"source": "tiny", "destination": "tiny2:v2"}).status_code == 200
    assert store.resolve("tiny2:v2", home=home).system == "You are terse."
    assert {"tiny:latest", "tiny2:v2"} <= _names(url)


def test_create_legacy_modelfile_from_a_store_model(url, tiny_models, home):
    assert _create_local(url, tiny_models("qwen2", "Q8_0")).status_code == 200
    r = httpx.post(url + "/api/create", json={
        "name": "derived", "modelfile": 'FROM base\nSYSTEM """Be brief."""\nPARAMETER top_k 5\n', "stream": False,
    }, timeout=60)
    assert r.status_code == 200 and r.json() == {"status": "success"}
    from corral import store

    assert store.resolve("derived", home=home).params == {"top_k": 5}
    assert store.resolve("derived", home=home).path == store.resolve("base", home=home).path


@pytest.mark.parametrize("body,status,words", [
    ({"model": "x", "modelfile": "FROM base\nFROBNICATE 1\n"}, 400, "unknown instruction"),
    ({"model": "x", "modelfile": "SYSTEM hi\n"}, 400, "no FROM"),
    ({"model": "x", "modelfile": "FROM base\nPARAMETER temperature hot\n"}, 400, "must be a number"),
    ({"model": "x", "modelfile": "FROM base\nPARAMETER nonsense 1\n"}, 400, "unknown parameter"),
    ({"model": "x", "modelfile": "FROM base\nADAPTER ./lora.gguf\n"}, 400, "ADAPTER"),
    ({"model": "x", "modelfile": "FROM no-such-model\n"}, 400, "no such model"),
    ({"model": "x", "from": "./model.gguf"}, 400, "relative path"),
    ({"model": "x", "from": "/no/such/model.gguf"}, 400, "no such file"),
    ({"model": "x", "from": "base", "parameters": {"num_predict": "many"}}, 400, "integer"),
    ({"model": "x", "from": "base", "parameters": {"temperature": {"a": 1}}}, 400, "parameters.temperature"),
    ({"model": "x", "from": "base", "messages": [{"role": "robot", "content": "beep"}]}, 400, "role"),
    ({"model": "x", "from": "base", "quantize": "q4_K_M"}, 400, "quantiz"),
    ({"model": "x", "from": "base", "files": {"a.gguf": "sha256:00"}}, 400, "files"),
    ({"model": "x"}, 400, "from"),
    ({"model": "bad name!", "from": "base"}, 400, ""),
    ({"from": "base"}, 400, "model"),
])
def test_bad_creates_are_errors_and_change_nothing(url, tiny_models, home, body, status, words):
    assert _create_local(url, tiny_models("qwen2", "Q8_0")).status_code == 200
    before = snapshot(home)
    for stream in (True, False):
        r = httpx.post(url + "/api/create", json={**body, "stream": stream}, timeout=60)
        assert r.status_code == status, r.text
        assert words in r.json()["error"]
        assert snapshot(home) == before


@pytest.mark.parametrize("method,path,body,status", [
    ("DELETE", "/api/delete", {"model": "no-such-model"}, 404),
    ("DELETE", "/api/delete", {"model": "bad name!"}, 400),
    ("DELETE", "/api/delete", {}, 400),
    ("POST", "/api/copy", {"source": "no-such-model", "destination": "y"}, 404),
    ("POST", "/api/copy", {"source": "base", "destination": "../escape"}, 400),
    ("POST", "/api/copy", {"source": "base", "destination": "bad name!"}, 400),
    ("POST", "/api/copy", {"source": "base"}, 400),
    ("POST", "/api/push", {"model": "base"}, 501),
])
def test_bad_deletes_and_copies_change_nothing(url, tiny_models, home, method, path, body, status):
    assert _create_local(url, tiny_models("qwen2", "Q8_0")).status_code == 200
    before = snapshot(home)
    r = httpx.request(method, url + path, json=body, timeout=30)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"}
    assert snapshot(home) == before


def test_delete_unloads_a_loaded_model(url, tiny_models, home):
    assert _create_local(url, tiny_models("qwen2", "Q8_0")).status_code == 200
    r = httpx.post(url + "/api/generate", json={"model": "base"}, timeout=120)
    assert r.json()["done_reason"] == "load"
    assert [m["name"] for m in httpx.get(url + "/api/ps").json()["models"]] == ["base"]
    assert httpx.request("DELETE", url + "/api/delete", json={"model": "base"}).status_code == 200
    assert httpx.get(url + "/api/ps").json()["models"] == []
    assert "base:latest" not in _names(url)
    assert not any((home / "blobs").iterdir())
