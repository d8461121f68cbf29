"""The output constraints a request can carry, from each API's field names to one
StructuredOutputsParams (pure functions; the engine compiles and checks the grammar itself).

- OpenAI: `response_format` `{"type": "json_object"}` or `{"type": "json_schema", "json_schema":
  {"name", "schema", "strict"}}` (`{"type": "text"}` is no constraint);
- vLLM: `structured_outputs` (`json`, `regex`, `choice`, `grammar`, `json_object`) and the older
  `guided_json`, `guided_regex`, `guided_choice`, `guided_grammar`;
- llama.cpp's server: `grammar` (GBNF) and `json_schema`;
- Ollama: `format`, "json" or a JSON schema.
A request may carry one of them; two are refused rather than one silently preferred.
"""
from __future__ import annotations

from typing import Any

from corral.core.structured_outputs import StructuredOutputsParams
from corral.errors import ValidationError

_VLLM_KEYS = {"json", "regex", "choice", "grammar", "json_object"}
# vLLM options that choose a backend or tune whitespace: nothing to choose here.
_VLLM_IGNORED_KEYS = {"backend", "disable_fallback", "disable_any_whitespace", "disable_additional_properties",
                      "whitespace_pattern", "structural_tag"}


def response_format_constraint(response_format: Any) -> StructuredOutputsParams | None:
    """OpenAI's `response_format`."""
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise ValidationError("response_format", "must be an object with a `type`")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return StructuredOutputsParams(json_object=True, param="response_format")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise ValidationError("response_format.json_schema", "must be an object with `name` and `schema`")
        schema = spec.get("schema", {"type": "object"})
        if not isinstance(schema, dict):
            raise ValidationError("response_format.json_schema.schema", "must be a JSON schema object")
        return StructuredOutputsParams(json=schema, param="response_format.json_schema.schema")
    raise ValidationError("response_format.type", f"must be text, json_object or json_schema, got {kind!r}")


def vllm_constraint(structured_outputs: Any) -> StructuredOutputsParams | None:
    """vLLM's `structured_outputs` object."""
    if structured_outputs is None:
        return None
    if not isinstance(structured_outputs, dict):
        raise ValidationError("structured_outputs", "must be an object such as {\"json\": {...}}")
    unknown = set(structured_outputs) - _VLLM_KEYS - _VLLM_IGNORED_KEYS
    if unknown:
        raise ValidationError("structured_outputs", f"unknown keys: {', '.join(sorted(unknown))}")
    if structured_outputs.get("structural_tag") is not None:
        raise ValidationError("structured_outputs.structural_tag", "is not supported; use tools with tool_choice")
    given = {k: v for k, v in structured_outputs.items() if k in _VLLM_KEYS and v not in (None, False)}
    if not given:
        return None
    if len(given) > 1:
        raise ValidationError("structured_outputs", f"set one of json, regex, choice, grammar, json_object; got {', '.join(sorted(given))}")
    return StructuredOutputsParams(**given, param="structured_outputs")


def first_constraint(candidates: dict[str, StructuredOutputsParams | None]) -> StructuredOutputsParams | None:
    """The one constraint set among `candidates` (field name -> constraint); two is an error."""
    given = {name: c for name, c in candidates.items() if c is not None}
    if len(given) > 1:
        raise ValidationError(next(iter(given)), f"only one output constraint per request; got {', '.join(given)}")
    return next(iter(given.values()), None)


def openai_constraint(req: Any) -> StructuredOutputsParams | None:
    """Every constraint field an OpenAI-compatible request may carry (chat or completions)."""
    def field(name: str):
        return getattr(req, name, None)

    def make(name: str, **kw) -> StructuredOutputsParams | None:
        return StructuredOutputsParams(**kw, param=name) if field(name) is not None else None

    return first_constraint({
        "response_format": response_format_constraint(field("response_format")),
        "structured_outputs": vllm_constraint(field("structured_outputs")),
        "guided_json": make("guided_json", json=field("guided_json")),
        "guided_regex": make("guided_regex", regex=field("guided_regex")),
        "guided_choice": make("guided_choice", choice=field("guided_choice")),
        "guided_grammar": make("guided_grammar", grammar=field("guided_grammar")),
        "grammar": make("grammar", grammar=field("grammar")),
        "json_schema": make("json_schema", json=field("json_schema")),
    })


def ollama_format_constraint(fmt: Any) -> StructuredOutputsParams | None:
    """Ollama's `format`: "json" (any JSON object) or a JSON schema; "" is none."""
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return StructuredOutputsParams(json_object=True, param="format")
    if isinstance(fmt, dict):
        return StructuredOutputsParams(json=fmt, param="format")
    raise ValidationError("format", f'must be "json" or a JSON schema object, got {fmt!r}')
