"""A model made through /api/create answers /api/chat, /api/generate and /v1/chat/completions with
its SYSTEM prompt, MESSAGE turns and PARAMETERs applied (checked against greedy `LLM.chat`)."""
from __future__ import annotations

import httpx
import pytest
from server_harness import ENGINE_KWARGS, serve_in_thread

SYSTEM = "Answer in one word."
PRESET = [{"role": "user", "content": "Ready?"}, {"role": "assistant", "content": "Yes."}]


@pytest.fixture(scope="module")
def created(tmp_path_factory, tiny_models):
    """(server url, offline LLM on the same file) with `tuned` created over the API."""
    from corral import LLM
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    gguf = tiny_models("qwen2", "Q8_0")
    app = create_app([], source=StoreModelSource(tmp_path_factory.mktemp("home")), engine_kwargs=ENGINE_KWARGS)
    url, stop = serve_in_thread(app)
    r = httpx.post(url + "/api/create", json={
        "model": "tuned", "from": str(gguf), "system": SYSTEM, "messages": PRESET,
        "parameters": {"temperature": 0, "num_predict": 6}, "stream": False,
    }, timeout=60)
    assert r.status_code == 200, r.text
    yield url, LLM(str(gguf), **ENGINE_KWARGS)
    stop()


def _greedy(llm, messages, max_tokens=6) -> str:
    from corral.core.sampling_params import SamplingParams

    return llm.chat(messages, SamplingParams(temperature=0.0, max_tokens=max_tokens))[0].outputs[0].text


def test_ollama_chat_gets_system_messages_and_parameters(created):
    url, llm = created
    r = httpx.post(url + "/api/chat", json={"model": "tuned", "messages": [{"role": "user", "content": "hi"}],
                                            "stream": False}, timeout=120)
    body = r.json()
    assert body["message"]["content"] == _greedy(llm, [{"role": "system", "content": SYSTEM}, *PRESET,
                                                       {"role": "user", "content": "hi"}])
    assert body["eval_count"] <= 6


def test_request_system_and_options_win(created):
    url, llm = created
    messages = [{"role": "system", "content": "Be loud."}, {"role": "user", "content": "hi"}]
    r = httpx.post(url + "/api/chat", json={"model": "tuned", "messages": messages, "stream": False,
                                            "options": {"num_predict": 3}}, timeout=120)
    assert r.json()["message"]["content"] == _greedy(llm, [*PRESET, *messages], max_tokens=3)


def test_ollama_generate_gets_them_too(created):
    url, llm = created
    r = httpx.post(url + "/api/generate", json={"model": "tuned", "prompt": "hi", "stream": False}, timeout=120)
    assert r.json()["response"] == _greedy(llm, [{"role": "system", "content": SYSTEM}, *PRESET,
                                                 {"role": "user", "content": "hi"}])


def test_openai_chat_gets_them_too(created):
    url, llm = created
    r = httpx.post(url + "/v1/chat/completions", json={"model": "tuned", "messages": [{"role": "user", "content": "hi"}]},
                   timeout=120)
    assert r.json()["choices"][0]["message"]["content"] == _greedy(
        llm, [{"role": "system", "content": SYSTEM}, *PRESET, {"role": "user", "content": "hi"}])


def test_recreating_a_loaded_model_reloads_its_settings(created):
    url, llm = created
    assert httpx.post(url + "/api/generate", json={"model": "tuned"}, timeout=120).json()["done_reason"] == "load"
    r = httpx.post(url + "/api/create", json={"model": "tuned", "modelfile": "FROM tuned\nPARAMETER num_predict 2\n"},
                   timeout=60)
    assert r.status_code == 200 and r.text.strip().endswith('{"status":"success"}')
    assert httpx.get(url + "/api/ps").json()["models"] == []
    r = httpx.post(url + "/api/chat", json={"model": "tuned", "messages": [{"role": "user", "content": "hi"}],
                                            "stream": False}, timeout=120)
    assert r.json()["eval_count"] <= 2
