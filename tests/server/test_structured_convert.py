"""The pure translations of output constraints and grammar dead ends."""
from __future__ import annotations

import pytest

from corral.core.outputs import CompletionOutput
from corral.errors import ValidationError
from corral.server import openai_convert as conv
from corral.server import openai_protocol as oa
from corral.server.structured_request import ollama_format_constraint, openai_constraint


def chat(**fields) -> oa.ChatCompletionRequest:
    return oa.ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


def test_each_field_maps_to_one_constraint_naming_it():
    schema = {"type": "object"}
    cases = [
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}},
         "json", "response_format.json_schema.schema"),
        ({"response_format": {"type": "json_object"}}, "json_object", "response_format"),
        ({"structured_outputs": {"regex": "a+", "backend": "xgrammar"}}, "regex", "structured_outputs"),
        ({"guided_choice": ["a", "b"]}, "choice", "guided_choice"),
        ({"guided_grammar": 'root ::= "a"'}, "grammar", "guided_grammar"),
        ({"grammar": 'root ::= "a"'}, "grammar", "grammar"),
        ({"json_schema": schema}, "json", "json_schema"),
    ]
    for fields, kind, param in cases:
        spec = conv.chat_to_generate(chat(**fields)).params.structured_outputs
        assert (spec.kind, spec.param) == (kind, param)
    assert openai_constraint(chat(response_format={"type": "text"})) is None
    assert ollama_format_constraint("json").kind == "json_object"
    assert ollama_format_constraint(schema).json == schema and ollama_format_constraint("") is None


@pytest.mark.parametrize("fields, param", [
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ({"structured_outputs": {"regex": "a", "choice": ["b"]}}, "structured_outputs"),
    ({"structured_outputs": {"jsonn": {}}}, "structured_outputs"),
    ({"guided_choice": []}, "guided_choice"),
    ({"guided_json": {}, "response_format": {"type": "json_object"}}, "response_format"),
])
def test_bad_or_doubled_constraints(fields, param):
    with pytest.raises(ValidationError) as e:
        conv.chat_to_generate(chat(**fields))
    assert e.value.param == param


def test_a_grammar_dead_end_says_why():
    meta = conv.ResponseMeta("id", 0, "m")
    dead = CompletionOutput(0, "{", [1], "error", "the output grammar admits no token here")
    fine = CompletionOutput(1, "ok", [2], "stop", "STOP")
    reply = conv.chat_completion(meta, [dead, fine], None, conv.usage(1, 2)).model_dump()
    assert reply["choices"][0]["finish_reason"] == "error"
    assert reply["choices"][0]["stop_reason"] == "the output grammar admits no token here"
    assert "stop_reason" not in reply["choices"][1]
