"""tool_choice auto and required for Llama 3 JSON calls and Mistral v11 `[TOOL_CALLS]name[ARGS]`
calls, walked token by token with the matcher the engine uses: free text stays free, and once a
call opens only a declared tool with valid arguments fits. Markers are plain text in one
vocabulary and special tokens in another (as in the real Mistral tokenizers)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.core.sampling_params import SamplingParams
from corral.server.tool_calls import plan_tools
from corral.structured.manager import StructuredOutputManager
from corral.tokenizer import Tokenizer
from fixtures.chat_templates import LLAMA31_TOOL_TEMPLATE, MISTRAL_V11_TOOL_TEMPLATE
from tests.tokenizer.tokenizer_files import with_chat_template

ADD = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}
TOOLS = [{"type": "function", "function": {"name": "add", "parameters": ADD}},
         {"type": "function", "function": {"name": "echo", "parameters": {
             "type": "object", "properties": {"text": {"type": "string", "maxLength": 5}}, "required": ["text"]}}}]


def _with_specials(folder: Path, names: list[str]) -> Path:
    """`folder` with `names` added to its vocabulary as special tokens (new ids at the end)."""
    path = folder / "tokenizer.json"
    spec = json.loads(path.read_text(encoding="utf-8"))
    next_id = max(t["id"] for t in spec["added_tokens"]) + 1
    for i, name in enumerate(names):
        spec["added_tokens"].append({"id": next_id + i, "content": name, "single_word": False, "lstrip": False,
                                     "rstrip": False, "normalized": False, "special": True})
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for i, name in enumerate(names):
        config["added_tokens_decoder"][str(next_id + i)] = {"content": name, "special": True, "lstrip": False,
                                                            "rstrip": False, "normalized": False, "single_word": False}
    config_path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tokenizers(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("tool_families")
    llama = with_chat_template(tiny_models("llama31", "hf"), root / "llama", LLAMA31_TOOL_TEMPLATE)
    llama_tag = _with_specials(with_chat_template(tiny_models("llama31", "hf"), root / "llama_tag",
                                                  LLAMA31_TOOL_TEMPLATE), ["<|python_tag|>"])
    v11_text = with_chat_template(tiny_models("qwen2", "hf"), root / "v11_text", MISTRAL_V11_TOOL_TEMPLATE)
    v11_special = _with_specials(with_chat_template(tiny_models("qwen2", "hf"), root / "v11_special",
                                                    MISTRAL_V11_TOOL_TEMPLATE), ["[TOOL_CALLS]", "[ARGS]"])
    return {name: Tokenizer.from_hf_dir(folder) for name, folder in
            [("llama", llama), ("llama_tag", llama_tag), ("v11_text", v11_text), ("v11_special", v11_special)]}


def _walk(tokenizer, choice, texts, parallel=True):
    """(how many of `texts` were accepted whole, one after another; whether the reply may end)."""
    params = SamplingParams()
    plan_tools(TOOLS, choice, parallel, tokenizer, params)
    manager = StructuredOutputManager(tokenizer, tokenizer.vocab_size)
    manager.add("r", params.structured_outputs)
    matcher = manager._matchers["r"]
    for n, text in enumerate(texts):
        ids = tokenizer.encode(text, add_special_tokens=False)
        if matcher.try_consume_tokens(ids) != len(ids):
            return n, False
    return len(texts), matcher.is_accepting()


CALL = '{"name": "add", "parameters": {"a": 1, "b": 2}}'


@pytest.mark.parametrize("texts, accepted, may_end", [
    (["The answer is 3, {not a call}."], 1, True),  # text stays free
    ([""], 1, True),
    ([CALL], 1, True),
    (["\n", CALL], 2, True),
    (['{"type": "function", "name": "add", "parameters": {"a": 1, "b": 2}}'], 1, True),
    (["<|python_tag|>", CALL], 2, True),
    ([CALL, "; ", '{"name": "echo", "parameters": {"text": "hi"}}'], 3, True),
    (['{"answer"'], 0, False),  # a reply that opens with `{` is a call
    (['{"name": "sub"'], 0, False),  # to a declared tool
    (['{"name": "add", "parameters": {"a": "one"'], 0, False),  # with valid arguments
    (['{"name": "echo", "parameters": {"text": "far too long"'], 0, False),
    ([CALL, " and some text"], 1, False),  # and nothing but calls after it
    (["<|python_tag|>", "hello"], 1, False),
])
@pytest.mark.parametrize("vocab", ["llama", "llama_tag"])
def test_llama3_auto_constrains_a_reply_that_opens_a_call(tokenizers, vocab, texts, accepted, may_end):
    assert _walk(tokenizers[vocab], "auto", texts) == (accepted, may_end)


def test_llama3_required_and_single_call(tokenizers):
    tok = tokenizers["llama"]
    assert _walk(tok, "required", ["Hello"]) == (0, False)
    assert _walk(tok, "required", [CALL]) == (1, True)
    assert _walk(tok, "required", [CALL, "; ", CALL], parallel=False) == (1, False)
    assert _walk(tok, "auto", [CALL, "; ", CALL], parallel=False) == (1, False)


@pytest.mark.parametrize("vocab", ["v11_text", "v11_special"])
def test_mistral_v11_auto_and_required(tokenizers, vocab):
    tok = tokenizers[vocab]
    call = ["[TOOL_CALLS]", "add", "[ARGS]", '{"a": 1, "b": 2}']
    assert _walk(tok, "auto", ["Plain text, [brackets] and all."]) == (1, True)
    assert _walk(tok, "auto", ["Let me add. ", *call]) == (5, True)
    assert _walk(tok, "auto", [*call, "[TOOL_CALLS]", "echo", "[ARGS]", '{"text": "hi"}']) == (8, True)
    assert _walk(tok, "auto", ["[TOOL_CALLS]", "sub"]) == (1, False)  # only declared tools
    assert _walk(tok, "auto", ["[TOOL_CALLS]", "add", "[ARGS]", '{"a": "x"']) == (3, False)  # valid arguments
    assert _walk(tok, "auto", [*call, " then text"]) == (4, False)  # calls run to the end
    assert _walk(tok, "auto", [*call, *call], parallel=False) == (4, False)
    assert _walk(tok, "required", ["Hello"]) == (0, False)
    assert _walk(tok, "required", call) == (4, True)
    assert _walk(tok, {"type": "function", "function": {"name": "echo"}}, call) == (1, False)


def test_special_markers_are_named_as_tokens_and_kept_in_the_text(tokenizers):
    params = SamplingParams()
    plan_tools(TOOLS, "required", True, tokenizers["v11_special"], params)
    assert "<[" in params.structured_outputs.lark and not params.skip_special_tokens
    params = SamplingParams()
    plan_tools(TOOLS, "required", True, tokenizers["v11_text"], params)
    assert '"[TOOL_CALLS]"' in params.structured_outputs.lark and params.skip_special_tokens
    params = SamplingParams()
    plan_tools(TOOLS, "auto", True, tokenizers["llama_tag"], params)
    assert "<[" in params.structured_outputs.lark  # <|python_tag|> named as a token
