"""A reasoning model thinks first, then answers under its constraint (as vLLM applies a grammar
only after the reasoning parser sees `</think>`), on a tiny random model with a Qwen3-style
template: whatever the weights, the thought is free and the answer after `</think>` validates.
The random model never closes its thought by itself, so `thinking_token_budget` (vLLM's field)
closes it; the grammar walks check the thought stays free and the answer is held to the schema."""
from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from server_harness import serve_in_thread

from corral.core.structured_outputs import StructuredOutputsParams
from corral.structured.manager import StructuredOutputManager
from corral.tokenizer import Tokenizer
from fixtures.tokenizers import QWEN2_CHAT_TEMPLATE
from tests.tokenizer.tokenizer_files import with_chat_template

# Qwen3's switch on the Qwen2.5 tool template: the reply opens in a thought unless enable_thinking
# is false, which closes an empty one in the prompt.
QWEN3_STYLE_TEMPLATE = QWEN2_CHAT_TEMPLATE.replace(
    "{{- '<|im_start|>assistant\\n' }}",
    "{{- '<|im_start|>assistant\\n' }}{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- else %}{{- '<think>\\n' }}{%- endif %}")
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120}},
          "required": ["name", "age"]}
ADD = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}
TOOLS = [{"type": "function", "function": {"name": "add", "parameters": ADD}}]
MESSAGES = [{"role": "user", "content": "Who?"}]
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}


@pytest.fixture(scope="module")
def thinker(tiny_models, empty_store, tmp_path_factory):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    assert "<think>" in QWEN3_STYLE_TEMPLATE
    folder = with_chat_template(tiny_models("qwen3", "hf"), tmp_path_factory.mktemp("qwen3") / "m",
                                QWEN3_STYLE_TEMPLATE)
    app = create_app([str(folder)], source=StoreModelSource(empty_store),
                     engine_kwargs={"max_model_len": 1024, "kv_cache_memory": 16 << 20, "num_threads": 1})
    url, stop = serve_in_thread(app)
    yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0), str(folder)
    stop()


def test_the_answer_after_the_thought_validates(thinker):
    client, model = thinker
    for seed in (1, 2):
        reply = client.chat.completions.create(model=model, messages=MESSAGES, response_format=RESPONSE_FORMAT,
                                               max_tokens=200, temperature=1.0, seed=seed,
                                               extra_body={"thinking_token_budget": 6})
        choice = reply.choices[0]
        assert choice.finish_reason == "stop" and choice.message.reasoning_content
        jsonschema.validate(json.loads(choice.message.content), SCHEMA)


def test_streamed_thought_then_valid_answer_in_the_official_client(thinker):
    client, model = thinker
    chunks = list(client.chat.completions.create(model=model, messages=MESSAGES, response_format=RESPONSE_FORMAT,
                                                 max_tokens=200, temperature=1.0, seed=3, stream=True,
                                                 extra_body={"thinking_token_budget": 5}))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    jsonschema.validate(json.loads("".join(d.content or "" for d in deltas)), SCHEMA)


def test_required_tool_call_after_the_thought(thinker):
    client, model = thinker
    reply = client.chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS, tool_choice="required",
                                           max_tokens=200, temperature=1.0, seed=4,
                                           extra_body={"thinking_token_budget": 4})
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.reasoning_content
    assert choice.message.tool_calls
    for call in choice.message.tool_calls:
        assert call.function.name == "add"
        jsonschema.validate(json.loads(call.function.arguments), ADD)


def test_thinking_off_is_constrained_from_the_first_token(thinker):
    client, model = thinker
    reply = client.chat.completions.create(model=model, messages=MESSAGES, response_format=RESPONSE_FORMAT,
                                           max_tokens=200, temperature=1.0, seed=5,
                                           extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert getattr(reply.choices[0].message, "reasoning_content", None) is None
    jsonschema.validate(json.loads(reply.choices[0].message.content), SCHEMA)


def test_a_budget_alone_closes_the_thought_and_leaves_the_answer_free(thinker):
    client, model = thinker
    reply = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=20, temperature=1.0, seed=6,
                                           extra_body={"thinking_token_budget": 3, "ignore_eos": True})
    message = reply.choices[0].message
    assert message.reasoning_content and message.content
    assert reply.usage.completion_tokens == 20


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    return Tokenizer.from_hf_dir(tiny_models("qwen3", "hf"))


def _walk(tokenizer, thinking, texts):
    manager = StructuredOutputManager(tokenizer, tokenizer.vocab_size)
    manager.add("r", StructuredOutputsParams(json=SCHEMA, param="response_format", thinking=thinking))
    matcher = manager._matchers["r"]
    for n, text in enumerate(texts):
        ids = tokenizer.encode(text, add_special_tokens=False)
        if matcher.try_consume_tokens(ids) != len(ids):
            return n, False
    return len(texts), matcher.is_accepting()


ANSWER = '{"name": "Ada", "age": 36}'


@pytest.mark.parametrize("thinking, texts, expected", [
    ("open", ['Free {"name": 1} </thin> text', "</think>", "\n\n", ANSWER], (4, True)),
    ("open", ["</think>", ANSWER], (2, True)),
    ("open", ["Thought", "</think>", "\n\n", '{"name": "far too long"'], (3, False)),
    ("open", ["Thought", "</think>", "Prose"], (2, False)),
    ("optional", [ANSWER], (1, True)),
    ("optional", ["<think>", "Thought", "</think>", "\n\n", ANSWER], (5, True)),
    ("optional", ["Prose"], (0, False)),
    ("closing", ["</think>", "\n\n", ANSWER], (3, True)),
    ("closing", ["More thought"], (0, False)),
])
def test_the_thought_is_free_and_the_answer_is_held(tokenizer, thinking, texts, expected):
    assert _walk(tokenizer, thinking, texts) == expected


def test_a_thought_over_budget_must_close(tokenizer):
    manager = StructuredOutputManager(tokenizer, tokenizer.vocab_size)
    manager.add("r", StructuredOutputsParams(json=SCHEMA, param="response_format", thinking="open", thinking_budget=3))
    ids = tokenizer.encode("one two three four", add_special_tokens=False)
    assert [manager.accept("r", t) for t in ids[:3]] == [None, None, None]
    matcher = manager._matchers["r"]
    assert matcher.try_consume_tokens(ids[3:]) == 0  # the thought may not go on
    close = tokenizer.encode('</think>\n\n' + ANSWER, add_special_tokens=False)
    assert matcher.try_consume_tokens(close) == len(close) and matcher.is_accepting()


@pytest.mark.parametrize("kind, answer, wrong", [
    ({"regex": "[a-c]{3}"}, "abc", "abd"), ({"choice": ["yes", "no"]}, "no", "nah"),
    ({"grammar": 'root ::= "x" [0-9]'}, "x7", "xy"), ({"json_object": True}, '{"a": 1}', "[1]"),
])
def test_every_kind_of_constraint_can_follow_a_thought(tokenizer, kind, answer, wrong):
    manager = StructuredOutputManager(tokenizer, tokenizer.vocab_size)
    for text, ok in ((answer, True), (wrong, False)):
        matcher = manager.compile(StructuredOutputsParams(**kind, thinking="open"))
        ids = tokenizer.encode("Hmm, x7 abc no.</think>\n" + text, add_special_tokens=False)
        assert (matcher.try_consume_tokens(ids) == len(ids) and matcher.is_accepting()) == ok
