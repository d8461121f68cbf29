"""No silent drops: a field corral does not implement is a 400 naming it; fields that change
nothing locally, and unimplemented ones sent with their neutral value, are accepted."""
from __future__ import annotations

import httpx
import pytest

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("path, body, param", [
    ("/v1/chat/completions", {"logit_bias": {"5": 10}}, "logit_bias"),
    ("/v1/chat/completions", {"functions": [{"name": "f"}]}, "functions"),
    ("/v1/chat/completions", {"reasoning_effort": "high"}, "reasoning_effort"),
    ("/v1/chat/completions", {"stream_options": {"include_usage": True, "continuous_usage_stats": True}},
     "stream_options.continuous_usage_stats"),
    ("/v1/completions", {"best_of": 3}, "best_of"),
    ("/v1/completions", {"allowed_token_ids": [1, 2]}, "allowed_token_ids"),
])
def test_openai_unknown_fields_are_named(server, path, body, param):
    payload = {"model": server.model, "max_tokens": 2, **body}
    payload.update({"messages": MESSAGES} if "chat" in path else {"prompt": "hi"})
    r = httpx.post(server.url + path, json=payload)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and param in r.json()["error"]["message"]


@pytest.mark.parametrize("path, body, name", [
    ("/api/generate", {"prompt": "hi", "template": "{{ .Prompt }}"}, "template"),
    ("/api/chat", {"messages": MESSAGES, "options": {"mirostat": 2}}, "options.mirostat"),
    ("/api/chat", {"messages": MESSAGES, "options": {"typical_p": 0.5}}, "options.typical_p"),
])
def test_ollama_unknown_fields_are_named(server, path, body, name):
    r = httpx.post(server.url + path, json={"model": server.model, "stream": False, **body})
    assert r.status_code == 400 and name in r.json()["error"]


def test_fields_that_change_nothing_are_accepted(server):
    r = httpx.post(server.url + "/v1/chat/completions", json={
        "model": server.model, "messages": MESSAGES, "max_tokens": 2, "store": False, "metadata": {"a": "b"},
        "service_tier": "auto", "logit_bias": {}, "modalities": ["text"], "user": "u", "prompt_cache_key": "k"})
    assert r.status_code == 200, r.text
    r = httpx.post(server.url + "/api/chat", json={
        "model": server.model, "messages": MESSAGES, "stream": False,
        "options": {"num_predict": 2, "num_thread": 2, "num_gpu": 0, "use_mmap": True, "mirostat": 0, "typical_p": 1.0}})
    assert r.status_code == 200, r.text
