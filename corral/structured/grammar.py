"""From a StructuredOutputsParams to the grammar text llguidance compiles, checked once.

JSON is written compactly as `json.dumps` writes it (", " between items, ": " after keys, no
other whitespace): a model cannot pad its answer with endless blanks, and the text reads as people
expect. Objects that list `properties` and say nothing about other keys get no other keys (as
OpenAI's strict mode requires them to say): the output still matches the schema, and a model
cannot wander off into keys nobody asked for. Every error is a ValidationError naming the
request field the constraint came from.
"""
from __future__ import annotations

import json
from typing import Any

from corral.core.structured_outputs import StructuredOutputsParams
from corral.errors import ValidationError

JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
MAX_GRAMMAR_CHARS = 1 << 20


def json_schema_grammar(schema: dict[str, Any] | bool, param: str) -> str:
    """llguidance grammar text for one JSON value matching `schema` (not yet validated)."""
    import llguidance

    if schema is True:
        schema = {}
    if not isinstance(schema, dict):
        raise ValidationError(param, "a JSON schema must be an object")
    try:
        return llguidance.LLMatcher.grammar_from_json_schema(closed_objects(schema), defaults=JSON_OPTIONS)
    except (ValueError, TypeError) as e:
        raise ValidationError(param, f"not a valid JSON schema: {e}") from None


_OTHER_KEYS = ("additionalProperties", "patternProperties", "unevaluatedProperties")


def closed_objects(schema: Any) -> Any:
    """`schema` with `additionalProperties: false` on every object schema that lists `properties`
    and leaves other keys unspecified (a copy; the caller's schema is not changed)."""
    if isinstance(schema, list):
        return [closed_objects(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k in ("enum", "const", "default", "examples") else closed_objects(v)) for k, v in schema.items()}
    if isinstance(out.get("properties"), dict) and not any(k in out for k in _OTHER_KEYS):
        out["additionalProperties"] = False
    return out


def json_schema_lark(schema: dict[str, Any]) -> str:
    """A Lark fragment (`%json {...}`) matching `schema`, for grammars that embed JSON values."""
    schema = closed_objects(schema)
    return "%json " + json.dumps({**schema, "x-guidance": {**JSON_OPTIONS, **schema.get("x-guidance", {})}})


def to_grammar(spec: StructuredOutputsParams) -> str:
    """The llguidance grammar for `spec`; raises ValidationError when the library rejects it."""
    import llguidance

    kind, param = spec.kind, spec.param
    if kind == "json":
        schema = spec.json
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as e:
                raise ValidationError(param, f"the JSON schema is not valid JSON: {e}") from None
        grammar = json_schema_grammar(schema, param)
    elif kind == "json_object":
        grammar = json_schema_grammar({"type": "object"}, param)
    elif kind == "regex":
        grammar = llguidance.LLMatcher.grammar_from_regex(spec.regex)
    elif kind == "choice":
        grammar = llguidance.LLMatcher.grammar_from_lark("start: " + " | ".join(json.dumps(c) for c in spec.choice))
    elif kind == "grammar":
        grammar = _from_gbnf_or_lark(spec.grammar, param)
    else:
        grammar = llguidance.LLMatcher.grammar_from_lark(spec.lark)
    if len(grammar) > MAX_GRAMMAR_CHARS:
        raise ValidationError(param, f"the grammar is too large (over {MAX_GRAMMAR_CHARS} characters)")
    problem = llguidance.LLMatcher.validate_grammar(grammar)
    if problem:
        raise ValidationError(param, f"invalid {_KIND_NAMES[kind]}: {problem.strip()}")
    return grammar


_KIND_NAMES = {"json": "JSON schema", "json_object": "JSON schema", "regex": "regular expression",
               "choice": "choice", "grammar": "grammar", "lark": "grammar"}


def _from_gbnf_or_lark(text: str, param: str) -> str:
    """GBNF (llama.cpp, `root ::= ...`) or Lark (`start: ...`), told apart as llguidance does."""
    import llguidance

    try:
        return llguidance.grammar_from("grammar", text)
    except ValueError as e:
        raise ValidationError(param, f"invalid grammar: {e}") from None
