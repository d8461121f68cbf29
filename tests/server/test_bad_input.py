"""Bad requests get 4xx with the protocol's error shape, and the server keeps serving."""
from __future__ import annotations

import httpx
import pytest

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]


def post(server, path: str, body) -> httpx.Response:
    if isinstance(body, (dict, list)):
        return httpx.post(server.url + path, json=body, timeout=60)
    return httpx.post(server.url + path, content=body, headers={"content-type": "application/json"}, timeout=60)


def openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


@pytest.mark.parametrize("body,param", [
    ("{not json", None),
    ({"model": "M", "messages": "hi"}, "messages"),
    ({"model": "M", "messages": USER, "temperature": "hot"}, "temperature"),
    ({"model": "M"}, "messages"),
    ({"model": "M", "messages": USER, "temperature": -1}, "temperature"),
    ({"model": "M", "messages": USER, "top_p": 0}, "top_p"),
    ({"model": "M", "messages": USER, "n": 0}, "n"),
    ({"model": "M", "messages": USER, "max_tokens": 0}, "max_tokens"),
    ({"model": "M", "messages": USER, "presence_penalty": 5}, "presence_penalty"),
    ({"model": "M", "messages": USER, "top_logprobs": 50, "logprobs": True}, "top_logprobs"),
])
def test_openai_bad_requests_are_400(server, body, param):
    if isinstance(body, dict):
        body = {**body, "model": server.model} if body.get("model") == "M" else body
    error = openai_error(post(server, CHAT, body), 400)
    assert error["type"] == "invalid_request_error" and error["param"] == param


def test_unknown_model_is_404_on_both_apis(server):
    error = openai_error(post(server, CHAT, {"model": "no-such-model", "messages": USER}), 404)
    assert error["code"] == "model_not_found"
    r = post(server, "/api/chat", {"model": "no-such-model", "messages": USER})
    assert r.status_code == 404 and "no-such-model" in r.json()["error"]


def test_prompt_over_the_context_is_400(server):
    long = "The quick brown fox jumps over the lazy dog. " * 100
    error = openai_error(post(server, "/v1/completions", {"model": server.model, "prompt": long}), 400)
    assert error["code"] == "context_length_exceeded"
    r = post(server, "/api/generate", {"model": server.model, "prompt": long, "stream": True})
    assert r.status_code == 400 and "context" in r.json()["error"]
    stream = post(server, CHAT, {"model": server.model, "messages": [{"role": "user", "content": long}], "stream": True})
    assert openai_error(stream, 400)["code"] == "context_length_exceeded"


@pytest.mark.parametrize("path,body", [
    ("/api/generate", "{oops"),
    ("/api/generate", {"model": "M", "prompt": "x", "options": {"temperature": "hot"}}),
    ("/api/generate", {"model": "M", "prompt": "x", "options": {"top_p": 3}}),
    ("/api/generate", {"model": "M", "prompt": "x", "options": {"num_predict": 0}}),
    ("/api/generate", {"model": "M", "prompt": "x", "keep_alive": "soon"}),
    ("/api/chat", {"model": "M", "messages": [{"content": "no role"}]}),
    ("/api/show", {}),
])
def test_ollama_bad_requests_are_400_with_a_message(server, path, body):
    if isinstance(body, dict) and body.get("model") == "M":
        body = {**body, "model": server.model}
    r = post(server, path, body)
    assert r.status_code == 400 and isinstance(r.json()["error"], str) and r.json()["error"]


def test_store_routes_refuse_bad_requests_and_push(server):
    for method, path, status in [("POST", "/api/pull", 400), ("DELETE", "/api/delete", 404),
                                 ("POST", "/api/copy", 400), ("POST", "/api/create", 400), ("POST", "/api/push", 501)]:
        r = httpx.request(method, server.url + path, json={"model": "x"})
        assert r.status_code == status and isinstance(r.json()["error"], str) and r.json()["error"]


def test_server_keeps_serving_after_bad_requests(server):
    post(server, CHAT, "{bad")
    r = post(server, CHAT, {"model": server.model, "messages": USER, "max_tokens": 2})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1


def test_api_key_guards_every_route_but_health(keyed_server):
    import openai

    url = keyed_server.url
    assert httpx.get(url + "/health").status_code == 200
    for method, path in [("GET", "/v1/models"), ("POST", CHAT), ("GET", "/api/tags"), ("POST", "/api/generate"),
                         ("GET", "/metrics"), ("GET", "/"), ("GET", "/api/ps")]:
        r = httpx.request(method, url + path, json={})
        assert r.status_code == 401, path
        assert r.json()["error"] if path.startswith("/api") or path in ("/", "/metrics") else r.json()["error"]["message"]
    wrong = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    client = openai.OpenAI(base_url=url + "/v1", api_key="test-key", max_retries=0)
    reply = client.completions.create(model=keyed_server.model, prompt="Hi", max_tokens=2)  # loads on first use
    assert reply.usage.completion_tokens >= 1
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
