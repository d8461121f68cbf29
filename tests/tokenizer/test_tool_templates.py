"""Tools reach the model through its own template exactly as transformers renders them
(`apply_chat_template(tools=...)`), for the Qwen2.5, Llama 3.1, Mistral v0.3 and Mistral v11
(`[TOOL_CALLS]name[ARGS]{...}`) templates, with calls and results in the history as OpenAI clients
send them (arguments as JSON text)."""
from __future__ import annotations

import json

import pytest

from corral.server.tool_calls import normalize_history
from corral.server.tool_formats import format_for_template
from corral.tokenizer import Tokenizer
from tests.fixtures.chat_templates import (LLAMA31_TOOL_TEMPLATE, MISTRAL_TOOL_TEMPLATE, MISTRAL_V11_TOOL_TEMPLATE,
                                           QWEN25_TOOL_TEMPLATE)
from tokenizer_files import with_chat_template

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city (°C)",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                        "unit": {"type": "string", "enum": ["c", "f"]}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Add two integers",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}},
]


def _wire_history(call_id: str) -> list[dict]:
    """A conversation as an OpenAI client sends it: arguments are JSON text."""
    return [
        {"role": "user", "content": "Weather in Zürich?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": call_id, "type": "function",
             "function": {"name": "get_weather", "arguments": json.dumps({"city": "Zürich", "unit": "c"})}}]},
        {"role": "tool", "tool_call_id": call_id, "content": json.dumps({"temp": 21})},
        {"role": "assistant", "content": "It is 21 °C."},
        {"role": "user", "content": "And 2+3?"},
    ]


@pytest.mark.parametrize("style, template, family, call_id", [
    ("qwen2", QWEN25_TOOL_TEMPLATE, "hermes", "call_abc"),
    ("llama3", LLAMA31_TOOL_TEMPLATE, "llama3_json", "call_abc"),
    ("spm", MISTRAL_TOOL_TEMPLATE, "mistral", "a1b2c3d4e"),
    ("spm", MISTRAL_V11_TOOL_TEMPLATE, "mistral_v11", "a1b2c3d4e"),
])
def test_tools_render_like_transformers(style, template, family, call_id, style_dirs, tmp_path):
    from transformers import AutoTokenizer

    folder = with_chat_template(style_dirs[style], tmp_path / style, template)
    wire = _wire_history(call_id)
    reference_messages = json.loads(json.dumps(wire))
    for m in reference_messages:  # transformers' documented shape: arguments as a dict
        for call in m.get("tool_calls", []):
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    expected = AutoTokenizer.from_pretrained(folder).apply_chat_template(
        reference_messages, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    ours = Tokenizer.from_hf_dir(folder)
    assert ours.apply_chat_template(normalize_history(wire), tools=TOOLS, add_generation_prompt=True) == expected
    assert "get_weather" in expected and "Add two integers" in expected and "Zürich" in expected
    assert format_for_template(template).name == family
    if family == "mistral_v11":
        assert '[TOOL_CALLS]get_weather[ARGS]{"city": "Zürich", "unit": "c"}' in expected
