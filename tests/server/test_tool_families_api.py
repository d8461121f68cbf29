"""Tool calls through the server for the families whose calls are not `<tool_call>` blocks: Llama
3.1 JSON calls and Mistral v11 `[TOOL_CALLS]name[ARGS]{...}` calls, each chosen from the model's
template, driven by the official client. Random weights never choose to call, so a call that comes
back to a declared tool with valid arguments is the grammar's doing; with `auto`, whatever the
model writes is either free text or such calls."""
from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from server_harness import serve_in_thread

from fixtures.chat_templates import LLAMA31_TOOL_TEMPLATE, MISTRAL_V11_TOOL_TEMPLATE
from tests.tokenizer.tokenizer_files import with_chat_template

ADD = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 9},
                                        "b": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["a", "b"]}
ECHO = {"type": "object", "properties": {"text": {"type": "string", "maxLength": 6}}, "required": ["text"]}
SCHEMAS = {"add": ADD, "echo": ECHO}
TOOLS = [{"type": "function", "function": {"name": name, "parameters": schema}} for name, schema in SCHEMAS.items()]
MESSAGES = [{"role": "user", "content": "Add 2 and 3."}]


@pytest.fixture(scope="module", params=[("llama31", LLAMA31_TOOL_TEMPLATE), ("qwen2", MISTRAL_V11_TOOL_TEMPLATE)],
                ids=["llama3_json", "mistral_v11"])
def family(request, tiny_models, empty_store, tmp_path_factory):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    arch, template = request.param
    folder = with_chat_template(tiny_models(arch, "hf"), tmp_path_factory.mktemp(arch) / "m", template)
    app = create_app([str(folder)], source=StoreModelSource(empty_store),
                     engine_kwargs={"max_model_len": 2048, "kv_cache_memory": 16 << 20, "num_threads": 1})
    url, stop = serve_in_thread(app)
    yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0), str(folder)
    stop()


def _check(calls) -> None:
    assert calls
    for call in calls:
        assert call.id.startswith("call_")
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def test_required_and_named_return_valid_calls(family):
    client, model = family
    reply = client.chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS, tool_choice="required",
                                           max_tokens=150, temperature=1.0, seed=1)
    assert reply.choices[0].finish_reason == "tool_calls"
    _check(reply.choices[0].message.tool_calls)
    reply = client.chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS, max_tokens=150,
                                           tool_choice={"type": "function", "function": {"name": "echo"}},
                                           temperature=1.0, seed=2)
    assert [c.function.name for c in reply.choices[0].message.tool_calls] == ["echo"]
    _check(reply.choices[0].message.tool_calls)


def test_streamed_calls_assemble_in_the_official_client(family):
    client, model = family
    with client.chat.completions.stream(model=model, messages=MESSAGES, tools=TOOLS, tool_choice="required",
                                        parallel_tool_calls=False, max_tokens=150, temperature=1.0, seed=3) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls" and len(final.choices[0].message.tool_calls) == 1
    _check(final.choices[0].message.tool_calls)


def test_auto_is_text_or_valid_calls(family):
    client, model = family
    for seed in range(4):
        reply = client.chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS, max_tokens=40,
                                               temperature=1.0, seed=seed)
        choice = reply.choices[0]
        if choice.message.tool_calls:
            assert choice.finish_reason == "tool_calls"
            _check(choice.message.tool_calls)
        else:
            assert choice.message.content is not None
