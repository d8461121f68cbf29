"""The grammars that make a model's tool calls valid, one family at a time (llguidance Lark).

Every call to a tool must name a declared tool and carry arguments that match its `parameters`
schema (JSON written as `json.dumps` writes it). Two kinds per family:
- `calls_only`: the whole reply is calls (tool_choice "required" or a named function);
- `triggered`: the reply is free text until the model opens a call, and from there on the call is
  constrained (tool_choice "auto").

Markers (`<tool_call>`, `[TOOL_CALLS]`, `[ARGS]`, `<|python_tag|>`) are spelled by `spell`: a
special token of the vocabulary as `<[id]>` (a grammar can only name it), other text quoted.
"""
from __future__ import annotations

import json
from typing import Callable

from corral.server.tool_schema import call_schema

Spell = Callable[[str], str]


def quoted(text: str) -> str:
    """`text` as a Lark string literal."""
    return json.dumps(text)


def calls_only(family: str, tools: list[dict], parallel: bool, spell: Spell) -> str:
    if family == "hermes":
        schema = _calls_schema(tools, "arguments")
        call = f'{spell("<tool_call>")} "\\n" {_json(schema)} "\\n" {spell("</tool_call>")}'
        body = 'call ("\\n" call)*' if parallel else "call"
        return f"%llguidance {{}}\nstart: {body}\ncall: {call}\n"
    if family == "mistral":
        schema = _calls_schema(tools, "arguments")
        array = {"type": "array", "items": schema, "minItems": 1, **({} if parallel else {"maxItems": 1})}
        return f'%llguidance {{}}\nstart: {spell("[TOOL_CALLS]")} " " {_json(array)}\n'
    if family == "mistral_v11":
        return f"%llguidance {{}}\nstart: {'call+' if parallel else 'call'}\n" + _v11_call_rules(tools, spell)
    if family == "llama3_json":
        return "%llguidance {}\nstart: calls\n" + _llama3_call_rules(tools, parallel)
    raise ValueError(f"unknown tool-call family {family!r}")


def triggered(family: str, tools: list[dict], parallel: bool, spell: Spell) -> str:
    if family == "hermes":
        return _hermes_triggered(tools, spell)
    if family == "mistral":
        array = {"type": "array", "items": _calls_schema(tools, "arguments"), "minItems": 1,
                 **({} if parallel else {"maxItems": 1})}
        opened, rules = _trigger("[TOOL_CALLS]", spell)
        return f'%llguidance {{}}\nstart: TEXT | {opened} " " {_json(array)}\n' + rules + _TEXT_RULES
    if family == "mistral_v11":
        # The calls run to the end of the reply: after the first one, only more calls.
        opened, rules = _trigger("[TOOL_CALLS]", spell)
        more = " call*" if parallel else ""
        return (f"%llguidance {{}}\nstart: TEXT | {opened} body{more}\n" + rules
                + _v11_call_rules(tools, spell) + _TEXT_RULES)
    if family == "llama3_json":
        return _llama3_triggered(tools, parallel, spell)
    raise ValueError(f"unknown tool-call family {family!r}")


_TEXT_RULES = "TEXT: /(.|\\n)*/\n"


def _trigger(marker: str, spell: Spell) -> tuple[str, str]:
    """(expression, its rules) for free text up to `marker`: the text ends exactly where the
    marker begins (a lazy rule), or, for a special token, where that token comes (free text never
    holds a special token)."""
    spelled = spell(marker)
    if spelled.startswith("<["):
        return f"TEXT {spelled}", ""
    return "trigger", f"trigger[lazy]: TEXT {spelled}\n"


def _hermes_triggered(tools: list[dict], spell: Spell) -> str:
    schema = _calls_schema(tools, "arguments")
    opened, rules = _trigger("<tool_call>", spell)
    call = f'"\\n" {_json(schema)} "\\n" {spell("</tool_call>")}'
    return f"%llguidance {{}}\nstart: ({opened} {call})* TEXT\n" + rules + _TEXT_RULES


def _v11_call_rules(tools: list[dict], spell: Spell) -> str:
    """`[TOOL_CALLS]name[ARGS]{...}` (Mistral's tokenizer v11 and later), one alternative per tool."""
    bodies = " | ".join(f'{quoted(t["function"]["name"])} {spell("[ARGS]")} {_json(_parameters(t))}' for t in tools)
    return f'call: {spell("[TOOL_CALLS]")} body\nbody: {bodies}\n'


_NAME_KEY, _PARAMETERS_KEY = '"name": ', '"parameters": '


def _llama3_call_rules(tools: list[dict], parallel: bool) -> str:
    """`{"name": ..., "parameters": {...}}` (also with `"type": "function"` first, as Llama 3.2
    often writes it), several separated by `; ` when parallel."""
    forms = []
    for t in tools:
        name = json.dumps(t["function"]["name"])
        args = _json(_parameters(t))
        for head in ("{", '{"type": "function", '):
            forms.append(f'{quoted(head + f"{_NAME_KEY}{name}, {_PARAMETERS_KEY}")} {args} "}}"')
    calls = 'call ("; " call)*' if parallel else "call"
    return f"calls: {calls}\ncall: " + " | ".join(forms) + "\n"


def _llama3_triggered(tools: list[dict], parallel: bool, spell: Spell) -> str:
    """Llama 3 calls have no opening marker: a reply that starts (after blanks) with `{` or
    `<|python_tag|>` is calls and nothing else; any other reply is free text."""
    tag = spell("<|python_tag|>")
    text = "TEXT: /[ \\t\\n]*[^ \\t\\n{](.|\\n)*/"
    if not tag.startswith("<["):  # the tag is plain text here: free text may not begin with it
        text += " & ~/[ \\t\\n]*<\\|python_tag\\|>(.|\\n)*/"
    return (f"%llguidance {{}}\nstart: (TEXT | BLANK? {tag}? calls)?\n{text}\nBLANK: /[ \\t\\n]+/\n"
            + _llama3_call_rules(tools, parallel))


def _parameters(tool: dict) -> dict:
    return tool["function"].get("parameters") or {"type": "object"}


def _calls_schema(tools: list[dict], args_key: str) -> dict:
    options = [call_schema(t["function"]["name"], t["function"].get("parameters"), args_key) for t in tools]
    return options[0] if len(options) == 1 else {"anyOf": options}


def _json(schema: dict) -> str:
    from corral.structured.grammar import json_schema_lark

    return json_schema_lark(schema)
