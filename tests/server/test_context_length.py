"""Ollama's `num_ctx` reaches the engine: a load or a chat that asks for a context length runs the
model at that length (reloading a copy loaded at another), and the engine then refuses what does
not fit it. A real server on loopback with its own tiny Qwen2 GGUF, so the shared servers keep
their context."""
from __future__ import annotations

import httpx
import pytest
from server_harness import ENGINE_KWARGS, serve_in_thread


@pytest.fixture(scope="module")
def ctx_server(tiny_models, tmp_path_factory):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    app = create_app([], source=StoreModelSource(tmp_path_factory.mktemp("ctx-home")), engine_kwargs=ENGINE_KWARGS)
    url, stop = serve_in_thread(app)
    yield url, app, str(tiny_models("qwen2", "Q8_0"))
    stop()


def _engine(app, model):
    return app.state.corral.manager.find_loaded(model).engine


def _ps_context(url, model):
    (entry,) = [m for m in httpx.get(f"{url}/api/ps").json()["models"] if m["name"] == model]
    return entry["context_length"]


def test_a_load_with_num_ctx_runs_the_engine_at_that_length(ctx_server):
    url, app, model = ctx_server
    r = httpx.post(f"{url}/api/generate", json={"model": model, "options": {"num_ctx": 128}}, timeout=120)
    assert r.status_code == 200, r.text
    assert _engine(app, model).max_model_len == 128
    assert _ps_context(url, model) == 128
    first = _engine(app, model)
    # a request that names no length uses the copy that is loaded
    r = httpx.post(f"{url}/api/chat", json={"model": model, "stream": False, "messages": [{"role": "user", "content": "hi"}],
                                             "options": {"num_predict": 2}}, timeout=120)
    assert r.status_code == 200, r.text
    assert _engine(app, model) is first


def test_a_chat_with_another_num_ctx_reloads_and_the_engine_enforces_it(ctx_server):
    url, app, model = ctx_server
    body = {"model": model, "stream": False, "options": {"num_ctx": 112, "num_predict": 2},
            "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(f"{url}/api/chat", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert _engine(app, model).max_model_len == 112 and _ps_context(url, model) == 112
    # a prompt that fits the server's default context but not this one is refused by the engine
    long = {**body, "messages": [{"role": "user", "content": "word " * 30}]}
    r = httpx.post(f"{url}/api/chat", json=long, timeout=120)
    assert r.status_code == 400, r.text
    assert "context" in r.json()["error"]
    # the same prompt at a length it fits is served
    long["options"] = {"num_ctx": 256, "num_predict": 2}
    r = httpx.post(f"{url}/api/chat", json=long, timeout=120)
    assert r.status_code == 200, r.text
    assert _engine(app, model).max_model_len == 256


@pytest.mark.parametrize("num_ctx, words", [(0, "positive"), (-5, "positive"), (10 ** 9, "context")])
def test_a_num_ctx_that_cannot_be_run_is_a_400_that_says_why(ctx_server, num_ctx, words):
    url, _, model = ctx_server
    r = httpx.post(f"{url}/api/generate", json={"model": model, "options": {"num_ctx": num_ctx}}, timeout=120)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]
