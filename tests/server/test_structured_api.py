"""Structured output through the servers, driven by the official clients: OpenAI response_format
(and the client's `parse` helper), vLLM's structured_outputs and guided_* fields, llama.cpp's
grammar, Ollama's format. The tiny model has random weights: valid output is the grammar's doing."""
from __future__ import annotations

import json
import re

import httpx
import jsonschema
import ollama
import openai
import pytest
from pydantic import BaseModel, Field

MESSAGES = [{"role": "user", "content": "Who are you?"}]


class Tag(BaseModel):
    label: str = Field(max_length=5)


class Person(BaseModel):
    name: str = Field(max_length=8)
    age: int = Field(ge=0, le=130)
    tags: list[Tag] = Field(max_length=2)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_chat_completions_parse_returns_the_pydantic_object(client, server):
    reply = client.chat.completions.parse(model=server.model, messages=MESSAGES, response_format=Person,
                                          max_tokens=120, temperature=0.7, seed=1)
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(message.parsed, Person) and Person.model_validate_json(message.content) == message.parsed


def test_json_schema_streams_valid_json(client, server):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0,
                                                                                "maximum": 9}},
              "required": ["ok", "n"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "t", "schema": schema, "strict": True}}
    stream = client.chat.completions.create(model=server.model, messages=MESSAGES, response_format=fmt,
                                            max_tokens=60, temperature=1.0, seed=2, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(text), schema)


def test_json_object_and_vllm_fields(client, server):
    reply = client.chat.completions.create(model=server.model, messages=MESSAGES, max_tokens=80, temperature=0,
                                           response_format={"type": "json_object"})
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(reply.choices[0].message.content), dict)
    cases = [
        ({"guided_regex": r"[0-9]{3}-[a-z]{2}"}, lambda t: re.fullmatch(r"[0-9]{3}-[a-z]{2}", t)),
        ({"guided_choice": ["alpha", "beta"]}, lambda t: t in ("alpha", "beta")),
        ({"guided_json": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2}},
         lambda t: len(json.loads(t)) <= 2),
        ({"guided_grammar": 'root ::= "x" [a-c]{2}'}, lambda t: re.fullmatch("x[a-c]{2}", t)),
        ({"structured_outputs": {"regex": "(yes|no)!"}}, lambda t: t in ("yes!", "no!")),
        ({"structured_outputs": {"choice": ["one", "two"]}}, lambda t: t in ("one", "two")),
        ({"grammar": 'root ::= "id" [0-9]{4}'}, lambda t: re.fullmatch(r"id\d{4}", t)),
    ]
    for extra, ok in cases:
        reply = client.completions.create(model=server.model, prompt="Say:", max_tokens=40, temperature=1.0, seed=3,
                                          extra_body=extra)
        assert ok(reply.choices[0].text), (extra, reply.choices[0].text)


@pytest.mark.parametrize("body, param", [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}}},
     "response_format.json_schema.schema"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"guided_regex": "a(b"}, "guided_regex"),
    ({"guided_grammar": "root ::= nothing"}, "guided_grammar"),
    ({"structured_outputs": {"json": {"type": "array", "uniqueItems": True}}}, "structured_outputs"),
    ({"guided_regex": "a", "guided_choice": ["b"]}, "guided_regex"),
    ({"thinking_token_budget": 0}, "thinking_token_budget"),
    ({"thinking_token_budget": 8}, "thinking_token_budget"),  # a model that does not think
])
def test_bad_constraints_are_a_400_naming_the_field(server, body, param):
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": server.model, "messages": MESSAGES, **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_ollama_format_schema_and_json(server):
    client = ollama.Client(host=server.url)
    schema = Person.model_json_schema()
    reply = client.chat(model=server.model, messages=MESSAGES, format=schema,
                        options={"temperature": 0.8, "seed": 4, "num_predict": 120})
    Person.model_validate_json(reply.message.content)
    jsonschema.validate(json.loads(reply.message.content), schema)
    parts = list(client.generate(model=server.model, prompt="Hi", format=schema, stream=True,
                                 options={"temperature": 0.8, "seed": 5, "num_predict": 120}))
    Person.model_validate_json("".join(p.response for p in parts))
    reply = client.generate(model=server.model, prompt="Hi", format="json", options={"temperature": 0, "num_predict": 80})
    if reply.done_reason == "stop":
        assert isinstance(json.loads(reply.response), dict)
    r = httpx.post(server.url + "/api/chat", json={"model": server.model, "messages": MESSAGES,
                                                   "format": {"type": "bogus"}})
    assert r.status_code == 400 and "format" in r.json()["error"]
