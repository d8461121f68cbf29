"""Chat templates render exactly like transformers' apply_chat_template (tokenize=False)."""
from __future__ import annotations

import json

import pytest

from corral.errors import ChatTemplateError
from corral.loader.gguf_file import GGUFFile
from corral.tokenizer import Tokenizer
from corral.tokenizer.chat_template import render_chat_template
from tests.fixtures.tokenizers import LLAMA2_CHAT_TEMPLATE, MISTRAL_CHAT_TEMPLATE
from tokenizer_files import with_chat_template, write_vocab_gguf

CONVERSATION = [
    {"role": "system", "content": "You are terse. Réponds en français si besoin."},
    {"role": "user", "content": "  What is 2+2? 日本語も  "},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And 3+3?"},
]
NO_SYSTEM = CONVERSATION[1:]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city (°C)",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TOOL_CONVERSATION = [
    {"role": "user", "content": "Weather in Zürich?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}}]},
    {"role": "tool", "content": json.dumps({"temp": 21})},
    {"role": "tool", "content": "sunny"},
]

TOJSON_TEMPLATE = (
    "{% for m in messages %}{{ m | tojson(indent=2) }}|{{ m | tojson(separators=(',', ':')) }}"
    "{% endfor %}{% if tools %}{{ tools | tojson }}{% endif %}{{ custom_flag }}"
)
LOOP_TEMPLATE = (
    "{%- for m in messages -%}{%- if m.role == 'system' %}{% continue %}{% endif -%}"
    "{% generation %}[{{ m.role }}]{{ m.content }}{% endgeneration %}"
    "{%- if loop.index > 2 %}{% break %}{% endif -%}{%- endfor -%}"
    "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}"
    "{%- if add_generation_prompt %}<gen>{% endif %}"
)


def _reference(folder, messages, **kwargs):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder).apply_chat_template(messages, tokenize=False, **kwargs)


@pytest.mark.parametrize("style, messages", [
    ("llama3", CONVERSATION), ("qwen2", CONVERSATION), ("qwen2", NO_SYSTEM), ("spm", CONVERSATION),
])
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_model_templates_render_like_transformers(style, messages, add_generation_prompt, style_dirs):
    ours = Tokenizer.from_hf_dir(style_dirs[style])
    expected = _reference(style_dirs[style], messages, add_generation_prompt=add_generation_prompt)
    assert ours.apply_chat_template(messages, add_generation_prompt=add_generation_prompt) == expected


def test_qwen_tools_render_like_transformers(qwen2_dir):
    ours = Tokenizer.from_hf_dir(qwen2_dir)
    expected = _reference(qwen2_dir, TOOL_CONVERSATION, tools=[WEATHER_TOOL], add_generation_prompt=True)
    assert "<tool_call>" in expected and "Zürich" in expected
    assert ours.apply_chat_template(TOOL_CONVERSATION, tools=[WEATHER_TOOL]) == expected


@pytest.mark.parametrize("template", [MISTRAL_CHAT_TEMPLATE, TOJSON_TEMPLATE, LOOP_TEMPLATE])
def test_other_templates_render_like_transformers(template, spm_dir, tmp_path):
    folder = with_chat_template(spm_dir, tmp_path / "model", template)
    messages = NO_SYSTEM if template == MISTRAL_CHAT_TEMPLATE else CONVERSATION
    tools = [WEATHER_TOOL] if template == TOJSON_TEMPLATE else None
    ours = Tokenizer.from_hf_dir(folder)
    expected = _reference(folder, messages, add_generation_prompt=True, tools=tools, custom_flag="on")
    assert ours.apply_chat_template(messages, tools=tools, custom_flag="on") == expected


def test_raise_exception_becomes_chat_template_error(spm_dir, tmp_path):
    mistral = Tokenizer.from_hf_dir(with_chat_template(spm_dir, tmp_path / "mistral", MISTRAL_CHAT_TEMPLATE))
    with pytest.raises(ChatTemplateError) as err:
        mistral.apply_chat_template(CONVERSATION)  # a system message: Mistral v0.1 refuses it
    assert err.value.message == "Conversation roles must alternate user/assistant/user/assistant/..."
    llama2 = Tokenizer.from_hf_dir(spm_dir)
    assert llama2.chat_template == LLAMA2_CHAT_TEMPLATE
    with pytest.raises(ChatTemplateError, match="must alternate"):
        llama2.apply_chat_template([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])


def test_no_chat_template_says_what_to_do(llama3_dir, tmp_path):
    folder = with_chat_template(llama3_dir, tmp_path / "base", None)
    tok = Tokenizer.from_hf_dir(folder)
    assert tok.chat_template is None
    with pytest.raises(ChatTemplateError, match="no chat template.*generate"):
        tok.apply_chat_template([{"role": "user", "content": "hi"}])
    gguf_tok = Tokenizer.from_gguf(GGUFFile(write_vocab_gguf(folder, tmp_path / "base.gguf")))
    with pytest.raises(ChatTemplateError, match="no chat template"):
        gguf_tok.apply_chat_template([{"role": "user", "content": "hi"}])


def test_broken_templates_raise_chat_template_error():
    with pytest.raises(ChatTemplateError, match="not valid Jinja"):
        render_chat_template("{% for m in messages %}", [])
    with pytest.raises(ChatTemplateError, match="failed on this conversation"):
        render_chat_template("{{ messages[0]['content'] + 1 }}", [{"role": "user", "content": "x"}])
    with pytest.raises(ChatTemplateError, match="role"):
        render_chat_template("x", ["not a message"])


def test_sandbox_blocks_python_internals():
    with pytest.raises(ChatTemplateError):
        render_chat_template("{{ messages.__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}", [])


def test_strftime_now_and_extra_variables():
    out = render_chat_template("{{ strftime_now('%Y') }}|{{ enable_thinking }}", [], enable_thinking=False)
    year, flag = out.split("|")
    assert len(year) == 4 and year.isdigit() and flag == "False"


def test_named_templates_and_template_file(qwen2_dir, tmp_path):
    folder = with_chat_template(qwen2_dir, tmp_path / "named", [
        {"name": "default", "template": "D{{ messages | length }}"},
        {"name": "tool_use", "template": "T{{ tools | length }}"},
    ])
    tok = Tokenizer.from_hf_dir(folder)
    assert tok.apply_chat_template(CONVERSATION) == "D4"
    assert tok.apply_chat_template(CONVERSATION, tools=[WEATHER_TOOL]) == "T1"
    gguf_tok = Tokenizer.from_gguf(GGUFFile(write_vocab_gguf(folder, tmp_path / "named.gguf")))
    assert gguf_tok.chat_templates == tok.chat_templates

    (folder / "chat_template.jinja").write_text("J{{ add_generation_prompt }}", encoding="utf-8")
    assert Tokenizer.from_hf_dir(folder).apply_chat_template(CONVERSATION) == "JTrue"
