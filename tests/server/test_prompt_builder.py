"""Which prompt the engine gets for each kind of request (a recording tokenizer stands in)."""
from __future__ import annotations

from corral.core.sampling_params import SamplingParams
from corral.server.generate_request import GenerateRequest
from corral.server.prompt_builder import build_prompt


class Tokenizer:
    chat_template = "template"

    def __init__(self, has_template: bool = True):
        self.chat_template = "template" if has_template else None

    def apply_chat_template(self, messages, add_generation_prompt=True, **kw):
        assert add_generation_prompt
        return "|".join(f"{m['role']}:{m['content']}" for m in messages) + ("|tools" if kw.get("tools") else "")

    def encode(self, text, add_special_tokens=True):
        return ([0] if add_special_tokens else []) + [ord(c) for c in text]


def req(**fields) -> GenerateRequest:
    return GenerateRequest(model="m", params=SamplingParams(), **fields)


def text(ids: list[int]) -> str:
    return "".join(map(chr, ids))


def test_chat_renders_template_without_extra_special_tokens_and_adds_default_system():
    ids = build_prompt(req(messages=[{"role": "user", "content": "hi"}], system="sys"), Tokenizer())
    assert text(ids) == "system:sys|user:hi"
    own = [{"role": "system", "content": "mine"}, {"role": "user", "content": "hi"}]
    assert text(build_prompt(req(messages=own, system="sys"), Tokenizer())) == "system:mine|user:hi"
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert text(build_prompt(req(messages=own, tools=tools), Tokenizer())).endswith("|tools")


def test_raw_prompts_pass_through_and_ollama_prompts_use_the_template():
    assert build_prompt(req(prompt="abc", raw=True), Tokenizer()) == "abc"
    assert build_prompt(req(prompt=[5, 6], raw=True), Tokenizer()) == [5, 6]
    assert text(build_prompt(req(prompt="abc", system="s"), Tokenizer())) == "system:s|user:abc"
    assert build_prompt(req(prompt="abc"), Tokenizer(has_template=False)) == "abc"


def test_context_goes_in_front():
    ids = build_prompt(req(prompt="b", raw=True, context=[1, 2]), Tokenizer())
    assert ids == [1, 2, ord("b")]
    assert build_prompt(req(prompt="b", context=[1]), Tokenizer())[:1] == [1]
