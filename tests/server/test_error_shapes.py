"""Every error a route can give comes in its API's shape: OpenAI's on /v1, Ollama's elsewhere.

Also: bodies with no JSON content type are read as JSON (as Ollama does), bodies over the size
limit are refused with 413, text that is not valid Unicode and numbers out of range are 400s.
"""
from __future__ import annotations

import json

import httpx
import pytest
from fastapi.routing import APIRoute
from server_harness import serve_in_thread

USER = [{"role": "user", "content": "hi"}]
http = httpx.Client(timeout=60)  # one client: a new one per request costs more than the request


def assert_api_shape(path: str, r: httpx.Response, status: int | None = None) -> str:
    """The error message, after checking the body has the shape of `path`'s API."""
    assert r.status_code >= 400 if status is None else r.status_code == status, (path, r.status_code, r.text)
    body = r.json()
    if path.startswith("/v1"):
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
        message = body["error"]["message"]
    else:
        assert set(body) == {"error"} and isinstance(body["error"], str), body
        message = body["error"]
    assert message and "detail" not in body
    return message


def api_routes(routes) -> list[APIRoute]:
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif getattr(route, "original_router", None) is not None:  # FastAPI's included routers
            found += api_routes(route.original_router.routes)
    return found


def routes(server) -> list[APIRoute]:
    return [r for r in api_routes(server.app.routes) if r.path.startswith(("/api/", "/v1/"))]


def concrete(path: str) -> str:
    return path.replace("{model_id:path}", "some-model").replace("{digest}", "sha256-00")


def test_every_route_answers_malformed_and_mistyped_bodies_in_its_shape(server):
    with_body = [r for r in routes(server) if r.methods & {"POST", "DELETE"}]
    assert {"/v1/chat/completions", "/v1/completions", "/api/generate", "/api/chat"} <= {r.path for r in with_body}
    for route in with_body:
        path, method = concrete(route.path), sorted(route.methods & {"POST", "DELETE"})[0]
        for body in (b"{oops", b"[1, 2]", b'"text"', b"null"):
            r = http.request(method, server.url + path, content=body,
                              headers={"content-type": "application/json"}, timeout=60)
            assert_api_shape(path, r)
            assert r.status_code < 500 or r.status_code == 501, (path, body, r.text)  # 501: /api/push


def test_unknown_routes_and_wrong_methods_answer_in_the_shape_of_their_api(server):
    for path in ("/v1/nope", "/v1", "/api/nope", "/nope/deeper"):
        message = assert_api_shape(path, http.get(server.url + path), 404)
        assert path in message
    for route in routes(server):
        method = next(m for m in ("PUT", "PATCH") if m not in route.methods)
        path = concrete(route.path)
        r = http.request(method, server.url + path, json={})
        message = assert_api_shape(path, r, 405)
        assert method in message and r.headers.get("allow")


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_bodies_without_a_json_content_type_are_read_as_json(server, content_type):
    body = json.dumps({"model": server.model, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}})
    headers = {"content-type": content_type} if content_type else {}
    request = httpx.Request("POST", server.url + "/api/generate", content=body.encode(), headers=headers)
    assert request.headers.get("content-type") == content_type
    r = http.send(request)
    assert r.status_code == 200, r.text
    assert r.json()["done"] and r.json()["eval_count"] >= 1
    chat = {"model": server.model, "messages": USER, "max_tokens": 2}
    r = http.post(server.url + "/v1/chat/completions", content=json.dumps(chat), headers=headers, timeout=60)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1, r.text


@pytest.fixture(scope="module")
def small_body_server(empty_store):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    url, stop = serve_in_thread(create_app([], source=StoreModelSource(empty_store), max_body_size=4096))
    yield url
    stop()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat", "/api/create"])
def test_bodies_over_the_limit_are_413_in_the_api_shape(small_body_server, path):
    big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]}).encode()
    message = assert_api_shape(path, http.post(small_body_server + path, content=big), 413)
    assert "4096" in message and "--max-body-size" in message

    def chunks():  # no Content-Length: the limit is found while reading
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]

    assert_api_shape(path, http.post(small_body_server + path, content=chunks()), 413)
    small = json.dumps({"model": "no-such-model", "messages": USER}).encode()
    r = http.post(small_body_server + path, content=small)
    assert r.status_code in (400, 404), r.text  # read and parsed: the route answered


def raw(server, path: str, body: str) -> httpx.Response:
    return http.post(server.url + path, content=body.encode(), headers={"content-type": "application/json"},
                      timeout=60)


@pytest.mark.parametrize("path,template", [
    ("/api/generate", '{"model": "MODEL", "prompt": "a\\ud800b", "stream": false}'),
    ("/api/chat", '{"model": "MODEL", "messages": [{"role": "user", "content": "\\udfff"}], "stream": false}'),
    ("/v1/completions", '{"model": "MODEL", "prompt": ["ok", "\\ud83d"]}'),
    ("/v1/chat/completions", '{"model": "MODEL", "messages": [{"role": "user", "content": "x\\ud800"}]}'),
    ("/v1/chat/completions", '{"model": "MODEL", "messages": [{"role": "user", "content": "ok"}], "stop": ["\\ud800"]}'),
    ("/api/show", '{"model": "MODEL\\ud800"}'),
    ("/api/generate", '{"model": "\\ud800MODEL", "prompt": "hi"}'),
    ("/v1/chat/completions", '{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}'),
])
def test_a_lone_surrogate_anywhere_is_a_400(server, path, template):
    message = assert_api_shape(path, raw(server, path, template.replace("MODEL", server.model)), 400)
    assert "surrogate" in message


@pytest.mark.parametrize("path,extra,param", [
    ("/v1/chat/completions", '"top_k": 9223372036854775808', "top_k"),
    ("/v1/chat/completions", '"max_tokens": 1180591620717411303424', "max_tokens"),
    ("/v1/chat/completions", '"temperature": NaN', "temperature"),
    ("/v1/chat/completions", '"temperature": Infinity', "temperature"),
    ("/v1/chat/completions", '"repetition_penalty": NaN', "repetition_penalty"),
    ("/v1/chat/completions", '"top_p": NaN', "top_p"),
    ("/v1/chat/completions", '"seed": 1180591620717411303424', "seed"),
    ("/v1/chat/completions", '"stop_token_ids": [100000000]', "stop_token_ids"),
    ("/v1/completions", '"frequency_penalty": -Infinity', "frequency_penalty"),
    ("/v1/completions", '"min_p": NaN', "min_p"),
])
def test_openai_numbers_out_of_range_are_400_naming_the_field(server, path, extra, param):
    key = "messages" if "chat" in path else "prompt"
    value = json.dumps(USER) if key == "messages" else '"hi"'
    r = raw(server, path, f'{{"model": "{server.model}", "{key}": {value}, {extra}}}')
    assert_api_shape(path, r, 400)
    assert r.json()["error"]["param"] == param


@pytest.mark.parametrize("options", [
    '{"temperature": NaN}', '{"top_k": 9223372036854775808}', '{"repeat_penalty": Infinity}',
    '{"num_predict": 1180591620717411303424}', '{"top_p": -Infinity}', '{"seed": 1e300}',
    '{"presence_penalty": NaN}', '{"min_p": 2}',
])
def test_ollama_options_out_of_range_are_400(server, options):
    for path, key, value in (("/api/generate", "prompt", '"hi"'), ("/api/chat", "messages", json.dumps(USER))):
        body = f'{{"model": "{server.model}", "{key}": {value}, "stream": false, "options": {options}}}'
        assert_api_shape(path, raw(server, path, body), 400)


@pytest.mark.parametrize("keep_alive", ["NaN", '"nan"', '"NaNs"'])
def test_a_keep_alive_that_is_not_a_number_is_400(server, keep_alive):
    body = f'{{"model": "{server.model}", "keep_alive": {keep_alive}}}'
    assert_api_shape("/api/generate", raw(server, "/api/generate", body), 400)


@pytest.mark.parametrize("keep_alive", ["1e300", "Infinity", '"1e300"', '"inf"', "1" + "0" * 400, '"99999999999999h"'])
def test_a_huge_keep_alive_means_forever_and_ps_still_answers(server, keep_alive):
    body = f'{{"model": "{server.model}", "keep_alive": {keep_alive}}}'
    r = raw(server, "/api/generate", body)
    assert r.status_code == 200 and r.json()["done_reason"] == "load", r.text
    ps = http.get(server.url + "/api/ps")
    assert ps.status_code == 200, ps.text
    assert [m["expires_at"] for m in ps.json()["models"] if m["name"] == server.model] == ["2318-11-26T00:00:00Z"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat"])
def test_bodies_nested_too_deep_are_a_400(server, path):
    nested = '{"a": ' * 100 + "1" + "}" * 100
    body = f'{{"model": "{server.model}", "messages": [{{"role": "user", "content": "hi"}}], "tools": [{nested}]}}'
    message = assert_api_shape(path, raw(server, path, body), 400)
    assert "nested more than 64 levels" in message
