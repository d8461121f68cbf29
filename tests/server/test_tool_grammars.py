"""The grammars behind tool_choice, walked token by token with the matcher the engine uses: auto
leaves text free until a call opens, then only a declared tool with valid arguments fits."""
from __future__ import annotations

import pytest

from corral.core.sampling_params import SamplingParams
from corral.server.tool_calls import plan_tools
from corral.structured.manager import StructuredOutputManager
from corral.tokenizer import Tokenizer

TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}]


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    return Tokenizer.from_hf_dir(tiny_models("qwen2", "hf"))


def _walk(tokenizer, choice, texts):
    """Feed `texts` one after another; returns how many were accepted whole, and the manager."""
    params = SamplingParams()
    plan_tools(TOOLS, choice, True, tokenizer, params)
    manager = StructuredOutputManager(tokenizer, tokenizer.vocab_size)
    manager.add("r", params.structured_outputs)
    matcher = manager._matchers["r"]
    accepted = 0
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        if matcher.try_consume_tokens(ids) != len(ids):
            break
        accepted += 1
    return accepted, matcher


def test_auto_is_free_until_a_call_opens(tokenizer):
    call = '{"name": "add", "arguments": {"a": 1, "b": 2}}'
    n, matcher = _walk(tokenizer, "auto", ["Any text at all, {even} braces. ", "<tool_call>\n", call, "\n</tool_call>"])
    assert n == 4 and not matcher.is_error()
    n, _ = _walk(tokenizer, "auto", ["Hello ", "<tool_call>\n", '{"name": "sub"'])
    assert n == 2  # inside a call, only declared tools fit
    n, _ = _walk(tokenizer, "auto", ["<tool_call>\n", '{"name": "add", "arguments": {"a": "one"'])
    assert n == 1  # and only valid arguments


def test_required_admits_nothing_but_calls(tokenizer):
    assert _walk(tokenizer, "required", ["Hello"])[0] == 0
    n, matcher = _walk(tokenizer, "required", ["<tool_call>\n", '{"name": "add", "arguments": {"a": 1, "b": 2}}',
                                               "\n</tool_call>"])
    assert n == 3 and matcher.is_accepting()
