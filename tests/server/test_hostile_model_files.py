"""A hostile model file named in a request is a 400 with a message that says what is wrong with the
file, in the API's own error shape, and the server goes on serving."""
from __future__ import annotations

import gguf
import httpx
import pytest
from server_harness import ENGINE_KWARGS, serve_in_thread

from fixtures.hostile_models import rewrite_gguf

V = gguf.GGUFValueType
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    app = create_app([], source=StoreModelSource(tmp_path_factory.mktemp("corral-home")), engine_kwargs=ENGINE_KWARGS)
    url, stop = serve_in_thread(app)
    yield url
    stop()


@pytest.fixture(scope="module")
def hostile(small_models, tmp_path_factory):
    """name -> path of a small GGUF with one hostile metadata value."""
    root = tmp_path_factory.mktemp("hostile")
    return {
        "layers": rewrite_gguf(small_models.gguf, root / "layers.gguf", {"llama.block_count": (2**31 - 1, V.UINT32)}),
        "heads": rewrite_gguf(small_models.gguf, root / "heads.gguf", {"llama.attention.head_count": (0, V.UINT32)}),
        "template": rewrite_gguf(small_models.gguf, root / "template.gguf",
                                 {"tokenizer.chat_template": ("{{ 'x' * 10000000000 }}", V.STRING)}),
    }


def post(url: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=120)


@pytest.mark.parametrize("name,problem", [("layers", "2147483647 layers"), ("heads", "head_count is 0")])
def test_a_hostile_file_is_a_400_on_both_apis(server_url, hostile, name, problem):
    model = str(hostile[name])
    r = post(server_url, "/v1/chat/completions", {"model": model, "messages": USER})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and problem in error["message"] and model in error["message"]
    r = post(server_url, "/api/chat", {"model": model, "messages": USER, "stream": False})
    assert r.status_code == 400 and problem in r.json()["error"]
    assert httpx.get(server_url + "/health", timeout=10).status_code == 200


def test_a_chat_template_bomb_is_a_400_and_the_model_still_serves(server_url, hostile):
    model = str(hostile["template"])
    r = post(server_url, "/v1/chat/completions", {"model": model, "messages": USER, "max_tokens": 2})
    assert r.status_code == 400, r.text
    assert "chat template" in r.json()["error"]["message"]
    r = post(server_url, "/api/chat", {"model": model, "messages": USER, "stream": False, "options": {"num_predict": 2}})
    assert r.status_code == 400 and "chat template" in r.json()["error"]
    # A prompt without the template still works: the model itself is fine.
    r = post(server_url, "/v1/completions", {"model": model, "prompt": "hello", "max_tokens": 2})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] >= 1
