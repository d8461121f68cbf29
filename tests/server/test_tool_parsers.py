"""Tool-call parsers on canned outputs of each family, whole and streamed in every split, and the
reasoning splitter; the family is chosen from the template text."""
from __future__ import annotations

import json

import pytest

from corral.server import tool_formats as tf
from corral.server.chat_reply import ReplyPlan, ReplyShaper, whole_reply
from corral.server.ollama_reply import chat_response, whole_pieces
from corral.server.reasoning import ReasoningSplitter, prompt_leaves_thinking_open
from corral.server.tool_calls import ToolPlan
from fixtures.chat_templates import (LLAMA31_TOOL_TEMPLATE, MISTRAL_TOOL_TEMPLATE, MISTRAL_V11_TOOL_TEMPLATE,
                                     QWEN25_TOOL_TEMPLATE)

NAMES = ["get_weather", "add"]

CASES = [
    # (format, reply text, expected content, expected calls)
    (tf.HERMES, '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
     "", [("get_weather", {"city": "Paris"})]),
    (tf.HERMES, 'Let me check.\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>\n'
                '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
     "Let me check.", [("add", {"a": 1, "b": 2}), ("get_weather", {"city": "Oslo"})]),
    (tf.HERMES, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}", "", [("add", {"a": 1})]),  # unclosed at EOS
    (tf.HERMES, "Plain answer with no call.", "Plain answer with no call.", []),
    (tf.HERMES, "<tool_call>\nnot json\n</tool_call>", "<tool_call>\nnot json\n</tool_call>", []),
    (tf.HERMES, '<tool_call>{"name": "unknown", "arguments": {}}</tool_call>',
     '<tool_call>{"name": "unknown", "arguments": {}}</tool_call>', []),
    (tf.LLAMA3_JSON, '{"name": "get_weather", "parameters": {"city": "Rome"}}', "", [("get_weather", {"city": "Rome"})]),
    (tf.LLAMA3_JSON, '<|python_tag|>{"name": "add", "parameters": {"a": 3, "b": 4}}', "", [("add", {"a": 3, "b": 4})]),
    (tf.LLAMA3_JSON, '{"name": "add", "parameters": {"a": 1, "b": 1}}; {"name": "add", "parameters": {"a": 2, "b": 2}}',
     "", [("add", {"a": 1, "b": 1}), ("add", {"a": 2, "b": 2})]),
    (tf.LLAMA3_JSON, "The weather is nice.", "The weather is nice.", []),
    (tf.LLAMA3_JSON, '{"answer": 42}', '{"answer": 42}', []),
    (tf.MISTRAL, '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Lyon"}}]', "",
     [("get_weather", {"city": "Lyon"})]),
    (tf.MISTRAL, '[TOOL_CALLS][{"name": "add", "arguments": {"a": 5, "b": 6}}, {"name": "add", "arguments": {"a": 0, "b": 0}}]',
     "", [("add", {"a": 5, "b": 6}), ("add", {"a": 0, "b": 0})]),
    (tf.MISTRAL, "Sure, no tools needed.", "Sure, no tools needed.", []),
    (tf.MISTRAL, "[TOOL_CALLS] [{broken", "[TOOL_CALLS] [{broken", []),
    (tf.MISTRAL_V11, '[TOOL_CALLS]get_weather[ARGS]{"city": "Lyon"}', "", [("get_weather", {"city": "Lyon"})]),
    (tf.MISTRAL_V11, 'Checking both.[TOOL_CALLS]add[ARGS]{"a": 5, "b": 6}[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}',
     "Checking both.", [("add", {"a": 5, "b": 6}), ("get_weather", {"city": "Oslo"})]),
    (tf.MISTRAL_V11, '[TOOL_CALLS]add[CALL_ID]a1b2c3d4e[ARGS]{"a": 1, "b": 2}', "", [("add", {"a": 1, "b": 2})]),
    (tf.MISTRAL_V11, "[TOOL_CALLS]add[ARGS]", "", [("add", {})]),  # the template writes `{}` as nothing
    (tf.MISTRAL_V11, '[TOOL_CALLS]add[ARGS]{"a": 1', '[TOOL_CALLS]add[ARGS]{"a": 1', []),
    (tf.MISTRAL_V11, '[TOOL_CALLS]add{"a": 1}', '[TOOL_CALLS]add{"a": 1}', []),
    (tf.MISTRAL_V11, '[TOOL_CALLS]add[ARGS]{"a": 1} and more', '[TOOL_CALLS]add[ARGS]{"a": 1} and more', []),
    (tf.MISTRAL_V11, "No call, only [ARGS] in text.", "No call, only [ARGS] in text.", []),
    (tf.LLAMA3_JSON, '{"type": "function", "name": "add", "parameters": {"a": 1, "b": 2}}', "", [("add", {"a": 1, "b": 2})]),
]


@pytest.mark.parametrize("fmt, text, content, calls", CASES)
def test_whole_replies_parse(fmt, text, content, calls):
    plan = ReplyPlan(tools=ToolPlan(fmt, "auto", True, NAMES))
    whole, shaper = whole_reply(plan, text)
    assert [(c.name, c.arguments) for _, c in whole.calls] == calls
    assert (whole.content or "") == content
    assert shaper.finish_reason("stop") == ("tool_calls" if calls else "stop")
    assert shaper.finish_reason("length") == "length"


@pytest.mark.parametrize("fmt, text, content, calls", CASES)
def test_streamed_replies_give_the_same_calls_in_any_split(fmt, text, content, calls):
    plan = ReplyPlan(tools=ToolPlan(fmt, "auto", True, NAMES))
    for size in (1, 2, 3, 7, len(text)):
        shaper = ReplyShaper(plan)
        pieces = []
        for i in range(0, len(text), size):
            pieces += shaper.feed(text[i:i + size])
        pieces += shaper.finish()
        got = [(p.call.name, p.call.arguments) for p in pieces if p.call]
        assert got == calls, size
        assert [p.call_index for p in pieces if p.call] == list(range(len(calls)))
        assert "".join(p.content for p in pieces).strip() == content


def test_parallel_off_keeps_the_first_call_and_none_parses_nothing():
    text = CASES[1][1]
    whole, _ = whole_reply(ReplyPlan(tools=ToolPlan(tf.HERMES, "auto", False, NAMES)), text)
    assert [c.name for _, c in whole.calls] == ["add"]
    whole, shaper = whole_reply(ReplyPlan(tools=ToolPlan(tf.HERMES, "none", True, NAMES)), text)
    assert whole.calls == [] and whole.content == text and shaper.finish_reason("stop") == "stop"


def test_family_comes_from_the_template():
    assert tf.format_for_template(QWEN25_TOOL_TEMPLATE) is tf.HERMES
    assert tf.format_for_template(LLAMA31_TOOL_TEMPLATE) is tf.LLAMA3_JSON
    assert tf.format_for_template(MISTRAL_TOOL_TEMPLATE) is tf.MISTRAL
    assert tf.format_for_template(MISTRAL_V11_TOOL_TEMPLATE) is tf.MISTRAL_V11


@pytest.mark.parametrize("text, in_thought, reasoning, content", [
    ("<think>\nLet me think.\n</think>\n\nThe answer.", False, "\nLet me think.\n", "The answer."),
    ("Just the answer.", False, "", "Just the answer."),
    ("Still thinking, then</think>\n\nDone.", True, "Still thinking, then", "Done."),
    ("<think>never closed", False, "never closed", ""),
    ("  <think>a</think>b", False, "a", "b"),
])
def test_reasoning_is_split_in_any_chunking(text, in_thought, reasoning, content):
    for size in (1, 2, 5, len(text)):
        splitter = ReasoningSplitter(in_thought)
        parts = [splitter.feed(text[i:i + size]) for i in range(0, len(text), size)] + [splitter.finish()]
        assert ("".join(r for r, _ in parts), "".join(c for _, c in parts)) == (reasoning, content)


def test_prompt_leaves_thinking_open():
    assert prompt_leaves_thinking_open("<|im_start|>assistant\n<think>\n")
    assert not prompt_leaves_thinking_open("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not prompt_leaves_thinking_open("<|im_start|>assistant\n")


def test_thinking_and_calls_together_in_openai_and_ollama_shapes():
    plan = ReplyPlan(tools=ToolPlan(tf.HERMES, "auto", True, NAMES), thinks=True)
    text = '<think>Need weather.</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Nice"}}\n</tool_call>'
    whole, shaper = whole_reply(plan, text)
    assert whole.reasoning == "Need weather." and whole.content is None
    assert [(c.name, json.loads(c.arguments_json)) for _, c in whole.calls] == [("get_weather", {"city": "Nice"})]
    message = chat_response("m", whole_pieces(plan, text), None).model_dump()["message"]
    assert message == {"role": "assistant", "content": "", "thinking": "Need weather.",
                       "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Nice"}}}]}
