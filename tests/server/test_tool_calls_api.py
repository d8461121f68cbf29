"""Tool calling through the servers on a tiny Qwen2 (its template writes `<tool_call>` blocks),
driven by the official clients. Random weights never choose to call a tool, so a call that comes
back whole, to a declared tool, with arguments valid for its schema, is the grammar's doing."""
from __future__ import annotations

import json

import httpx
import jsonschema
import ollama
import openai
import pytest
from server_harness import serve_in_thread

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8},
                                            "unit": {"enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"]}
ADD = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99},
                                        "b": {"type": "integer", "minimum": 0, "maximum": 99}},
       "required": ["a", "b"]}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "add", "description": "Add two numbers", "parameters": ADD}},
]
SCHEMAS = {"get_weather": WEATHER, "add": ADD}
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def tool_server(tiny_models, empty_store):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    model = str(tiny_models("qwen2", "hf"))
    app = create_app([model], source=StoreModelSource(empty_store),
                     engine_kwargs={"max_model_len": 2048, "kv_cache_memory": 32 << 20, "max_num_seqs": 8,
                                    "num_threads": 1})
    url, stop = serve_in_thread(app)
    yield url, model
    stop()


@pytest.fixture(scope="module")
def client(tool_server):
    return openai.OpenAI(base_url=tool_server[0] + "/v1", api_key="unused", max_retries=0)


def _check_call(name: str, arguments: str | dict) -> None:
    args = json.loads(arguments) if isinstance(arguments, str) else arguments
    jsonschema.validate(args, SCHEMAS[name])


def test_required_returns_valid_calls(client, tool_server):
    reply = client.chat.completions.create(model=tool_server[1], messages=MESSAGES, tools=TOOLS,
                                           tool_choice="required", parallel_tool_calls=False,
                                           max_tokens=120, temperature=0.8, seed=1)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    _check_call(call.function.name, call.function.arguments)


def test_named_tool_is_the_one_called(client, tool_server):
    for seed in (1, 2):
        reply = client.chat.completions.create(model=tool_server[1], messages=MESSAGES, tools=TOOLS,
                                               tool_choice={"type": "function", "function": {"name": "add"}},
                                               max_tokens=120, temperature=1.0, seed=seed)
        calls = reply.choices[0].message.tool_calls
        assert [c.function.name for c in calls] == ["add"]
        _check_call("add", calls[0].function.arguments)


def test_streamed_calls_assemble_in_the_official_client(client, tool_server):
    with client.chat.completions.stream(model=tool_server[1], messages=MESSAGES, tools=TOOLS,
                                        tool_choice="required", parallel_tool_calls=False,
                                        max_tokens=120, temperature=0.8, seed=3) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    _check_call(call.function.name, call.function.arguments)
    raw = list(client.chat.completions.create(model=tool_server[1], messages=MESSAGES, tools=TOOLS,
                                              tool_choice="required", parallel_tool_calls=False, stream=True,
                                              max_tokens=120, temperature=0.8, seed=3))
    deltas = [d for c in raw if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert len(deltas) == 1 and deltas[0].index == 0 and deltas[0].id.startswith("call_")
    assert (deltas[0].function.name, deltas[0].function.arguments) == (call.function.name, call.function.arguments)
    assert [c.choices[0].finish_reason for c in raw if c.choices][-1] == "tool_calls"


def test_streamed_calls_carry_logprobs(client, tool_server):
    """Tokens held back while a call is assembled still send their logprobs, once each, in order."""
    args = dict(model=tool_server[1], messages=MESSAGES, tools=TOOLS, tool_choice="required", max_tokens=120,
                temperature=0.8, seed=4, logprobs=True, top_logprobs=1)
    whole = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    streamed = [t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert len(streamed) == chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert [t.token for t in streamed] == [t.token for t in whole.choices[0].logprobs.content]
    assert "".join(t.token for t in streamed).count("<tool_call>") == len(whole.choices[0].message.tool_calls)


def test_history_with_calls_and_results_renders(client, tool_server):
    history = MESSAGES + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
    ]
    reply = client.chat.completions.create(model=tool_server[1], messages=history, tools=TOOLS, tool_choice="none",
                                           max_tokens=5, temperature=0)
    assert reply.choices[0].message.tool_calls is None and reply.usage.prompt_tokens > 0


def test_auto_leaves_plain_text_free(client, tool_server):
    reply = client.chat.completions.create(model=tool_server[1], messages=MESSAGES, tools=TOOLS,
                                           max_tokens=10, temperature=0)
    assert reply.choices[0].finish_reason == "length" and reply.choices[0].message.content


@pytest.mark.parametrize("body, param", [
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
    ({"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}}, "tool_choice"),
    ({"messages": MESSAGES + [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "add", "arguments": "{not json"}}]}]},
     "messages[1].tool_calls[0].function.arguments"),
])
def test_bad_tool_requests_are_a_400_naming_the_field(tool_server, body, param):
    payload = {"model": tool_server[1], "messages": MESSAGES, **body}
    r = httpx.post(tool_server[0] + "/v1/chat/completions", json=payload)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_tools_on_a_template_without_tools_are_refused(server):
    r = httpx.post(server.url + "/v1/chat/completions",
                   json={"model": server.model, "messages": MESSAGES, "tools": TOOLS})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools"


def test_ollama_tools_come_back_as_message_tool_calls(tool_server):
    client = ollama.Client(host=tool_server[0])
    # Ollama has no tool_choice: a forced format would not be a call, so this checks the plumbing
    # with a history turn the model's own template renders, and that plain replies stay text.
    reply = client.chat(model=tool_server[1], messages=MESSAGES, tools=TOOLS,
                        options={"temperature": 0, "num_predict": 8})
    assert reply.message.content and not reply.message.tool_calls
