"""Models by filesystem path: always on loopback, beyond it only with `corral serve --allow-paths`
(or for the paths the operator named on the command line)."""
from __future__ import annotations

import httpx
import pytest
from server_harness import ENGINE_KWARGS, serve_in_thread

from corral import store
from corral.cli.main import main
from corral.server.model_source import is_loopback


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("example.com", False),
])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("argv, allowed", [
    (["--host", "127.0.0.1"], True),
    (["--host", "0.0.0.0"], False),
    (["--host", "0.0.0.0", "--allow-paths"], True),
])
def test_serve_allows_paths_on_loopback_or_with_the_flag(argv, allowed, monkeypatch, tmp_path):
    import uvicorn

    served = {}
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    assert main(["serve", *argv, "--port", "1"]) == 0
    assert served["host"] == argv[1] and served["port"] == 1
    assert served["app"].state.corral.manager.source.allow_paths is allowed


@pytest.fixture
def no_paths_server(tmp_path, tiny_models):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    home = tmp_path / "corral-home"
    gguf = tiny_models("qwen2", "Q8_0")
    store.create("base", f"FROM {gguf}\n", None, home=home)
    source = StoreModelSource(home, allow_paths=False, operator_paths=["/named/on/serve.gguf"])
    url, stop = serve_in_thread(create_app([], source=source, engine_kwargs=ENGINE_KWARGS))
    yield url, gguf
    stop()


def test_without_paths_a_path_is_refused_in_each_api_shape(no_paths_server):
    url, gguf = no_paths_server
    r = httpx.post(url + "/api/generate", json={"model": str(gguf), "prompt": "hi"}, timeout=60)
    assert r.status_code == 403 and "--allow-paths" in r.json()["error"]
    r = httpx.post(url + "/v1/chat/completions", json={"model": str(gguf), "messages": [{"role": "user", "content": "hi"}]},
                   timeout=60)
    assert r.status_code == 403 and "--allow-paths" in r.json()["error"]["message"]
    r = httpx.post(url + "/api/create", json={"model": "copy", "from": str(gguf), "stream": False}, timeout=60)
    assert r.status_code == 403 and "--allow-paths" in r.json()["error"]
    r = httpx.post(url + "/api/generate", json={"model": "base", "prompt": "hi", "stream": False,
                                                "options": {"num_predict": 1}}, timeout=120)
    assert r.status_code == 200  # store names are served as ever


def test_paths_named_on_serve_stay_allowed(tmp_path):
    from corral.server.model_source import PathsNotAllowedError
    from corral.server.store_source import StoreModelSource

    source = StoreModelSource(tmp_path, allow_paths=False, operator_paths=["/models/a.gguf"])
    source.check_path_allowed("/models/a.gguf")
    source.check_path_allowed("qwen2.5:0.5b")
    with pytest.raises(PathsNotAllowedError):
        source.check_path_allowed("/models/b.gguf")
