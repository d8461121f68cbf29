"""POST /tokenize and /detokenize on a real server, in vLLM's and llama.cpp's shapes, against
the transformers tokenizer of the same folder."""
from __future__ import annotations

import httpx
import pytest

TEXT = "Hello, world! Tokens \u00e9t\u00e9 \u4e16\u754c <|eot_id|> end"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there!"}]


@pytest.fixture(scope="module")
def reference(server):
    import transformers

    return transformers.AutoTokenizer.from_pretrained(server.model)


def post(server, path, **body):
    return httpx.post(server.url + path, json=body, timeout=60)


def test_vllm_shape_adds_special_tokens_by_default_and_round_trips(server, reference):
    reply = post(server, "/tokenize", model=server.model, prompt=TEXT, return_token_strs=True).json()
    expected = reference(TEXT, add_special_tokens=True)["input_ids"]
    assert reply["tokens"] == expected and expected[0] == reference.bos_token_id
    assert reply["count"] == len(expected) and reply["max_model_len"] == 256
    assert reply["token_strs"] == reference.convert_ids_to_tokens(expected)
    back = post(server, "/detokenize", model=server.model, tokens=reply["tokens"]).json()
    assert back["prompt"] == back["content"] == reference.bos_token + TEXT


def test_llamacpp_shape_without_specials_and_with_pieces(server, reference):
    plain = post(server, "/tokenize", content=TEXT).json()  # no model: the loaded one
    expected = reference(TEXT, add_special_tokens=False)["input_ids"]
    assert plain["tokens"] == expected
    assert post(server, "/tokenize", content=TEXT, add_special=True).json()["tokens"] == [reference.bos_token_id, *expected]
    pieces = post(server, "/tokenize", content=TEXT, with_pieces=True).json()["tokens"]
    assert [p["id"] for p in pieces] == expected
    joined = b"".join(p["piece"].encode() if isinstance(p["piece"], str) else bytes(p["piece"]) for p in pieces)
    assert joined.decode() == TEXT
    assert post(server, "/detokenize", tokens=expected).json()["content"] == TEXT


def test_messages_render_the_chat_template(server, reference):
    reply = post(server, "/tokenize", model=server.model, messages=MESSAGES).json()
    text = reference.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert reply["tokens"] == reference(text, add_special_tokens=False)["input_ids"]


def test_bad_requests_are_400(server):
    assert post(server, "/tokenize", model=server.model).status_code == 400
    assert post(server, "/tokenize", prompt="a", content="b").status_code == 400
    reply = post(server, "/detokenize", model=server.model, tokens=[10**9])
    assert reply.status_code == 400 and "vocabulary" in reply.json()["error"]
    assert post(server, "/tokenize", model="no-such-model", prompt="a").status_code == 404
