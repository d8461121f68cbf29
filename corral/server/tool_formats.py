"""How each model family writes tool calls: told from its chat template, parsed from its output,
and enforced by a grammar.

- `hermes` (Qwen2.5, Qwen3, Hermes and other templates that mention `<tool_call>`):
  `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`, one block per call;
- `llama3_json` (Llama 3.1/3.2, templates that say `"parameters": dictionary of argument name`):
  the whole reply is `{"name": ..., "parameters": {...}}` (optionally after `<|python_tag|>`);
- `mistral` (templates that mention `[TOOL_CALLS]`): `[TOOL_CALLS] [{"name": ..., "arguments":
  {...}}, ...]`;
- `mistral_v11` (templates that mention `[TOOL_CALLS]` and `[ARGS]`: Mistral's tokenizer v11 and
  later, as Mistral-Small-3.2, Magistral, Devstral): `[TOOL_CALLS]name[ARGS]{...}` per call, one
  after another to the end of the reply.
The family comes from the template text, never from the model's name.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from corral.server import tool_grammars
from corral.server.tool_grammars import Spell


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class ToolFormat:
    """One family's tool-call syntax. `open`/`close` frame each call (hermes) or the call list
    (mistral, no close); llama3_json has no frame: the whole reply is the call."""

    name: str
    open: str
    close: str
    args_key: str  # "arguments" or "parameters"
    args_marker: str = ""  # mistral_v11: between a call's name and its arguments

    def parse(self, text: str) -> tuple[str, list[ParsedCall]]:
        """(text without the calls, calls). Text that does not parse as a call stays text."""
        return _PARSERS[self.name](self, text)

    def constrained_grammar(self, tools: list[dict], parallel: bool, spell: Spell) -> str:
        """Lark grammar for output that is only tool calls (tool_choice required or named)."""
        return tool_grammars.calls_only(self.name, tools, parallel, spell)

    def triggered_grammar(self, tools: list[dict], parallel: bool, spell: Spell) -> str:
        """Lark grammar for tool_choice auto: free text, and once a call opens, valid calls."""
        return tool_grammars.triggered(self.name, tools, parallel, spell)

    @property
    def markers(self) -> tuple[str, ...]:
        """The marker strings this family writes (the parser must see them in the text)."""
        return tuple(m for m in (self.open, self.close, self.args_marker) if m)


HERMES = ToolFormat("hermes", "<tool_call>", "</tool_call>", "arguments")
LLAMA3_JSON = ToolFormat("llama3_json", "", "", "parameters")
MISTRAL = ToolFormat("mistral", "[TOOL_CALLS]", "", "arguments")
MISTRAL_V11 = ToolFormat("mistral_v11", "[TOOL_CALLS]", "", "arguments", "[ARGS]")


def format_for_template(template: str | None) -> ToolFormat:
    """The family a chat template writes calls in; hermes when the template does not say."""
    text = template or ""
    if "[TOOL_CALLS]" in text:
        return MISTRAL_V11 if "[ARGS]" in text else MISTRAL
    if "<tool_call>" in text:
        return HERMES
    if "<|python_tag|>" in text or '"parameters": dictionary of argument name' in text:
        return LLAMA3_JSON
    return HERMES


def template_supports_tools(template: str | None) -> bool:
    return bool(template) and "tools" in template


# -- parsers --------------------------------------------------------------------------------


def _call_from(obj: Any, args_key: str) -> ParsedCall | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get(args_key, obj.get("arguments", obj.get("parameters", {})))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None
    if not isinstance(args, dict):
        return None
    return ParsedCall(obj["name"], args)


_HERMES_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def _parse_hermes(fmt: ToolFormat, text: str) -> tuple[str, list[ParsedCall]]:
    calls, kept, pos = [], [], 0
    for m in _HERMES_CALL.finditer(text):
        try:
            call = _call_from(json.loads(m.group(1)), fmt.args_key)
        except json.JSONDecodeError:
            call = None
        if call is None:
            continue
        kept.append(text[pos:m.start()])
        pos = m.end()
        calls.append(call)
    kept.append(text[pos:])
    return "".join(kept).strip() if calls else text, calls


def _parse_llama3(fmt: ToolFormat, text: str) -> tuple[str, list[ParsedCall]]:
    body = text.strip()
    if body.startswith("<|python_tag|>"):
        body = body[len("<|python_tag|>"):].strip()
    if not body.startswith("{"):
        return text, []
    calls = []
    for part in _json_values(body, separator=";"):
        call = _call_from(part, fmt.args_key)
        if call is None:
            return text, []
        calls.append(call)
    return ("", calls) if calls else (text, [])


def _parse_mistral(fmt: ToolFormat, text: str) -> tuple[str, list[ParsedCall]]:
    at = text.find(fmt.open)
    if at < 0:
        return text, []
    rest = text[at + len(fmt.open):].strip()
    try:
        value, _ = json.JSONDecoder().raw_decode(rest)
    except json.JSONDecodeError:
        return text, []
    items = value if isinstance(value, list) else [value]
    calls = [_call_from(v, fmt.args_key) for v in items]
    if not calls or any(c is None for c in calls):
        return text, []
    return text[:at].strip(), calls


def _json_values(text: str, separator: str) -> list[Any]:
    """JSON values one after another, separated by `separator` and whitespace; [] if any fails."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            return []
        out.append(value)
        i = end
        while i < len(text) and (text[i].isspace() or text[i] == separator):
            i += 1
    return out


_V11_CALL = re.compile(r"\s*([A-Za-z0-9_.\-]{1,64})(?:\[CALL_ID\][A-Za-z0-9]*)?\[ARGS\]")


def _parse_mistral_v11(fmt: ToolFormat, text: str) -> tuple[str, list[ParsedCall]]:
    """`[TOOL_CALLS]name[ARGS]{...}` one after another to the end of the reply (a `[CALL_ID]id`
    before `[ARGS]` is allowed, as Devstral writes it); all of it parses, or it stays text."""
    at = text.find(fmt.open)
    if at < 0:
        return text, []
    calls, decoder = [], json.JSONDecoder()
    for part in text[at + len(fmt.open):].split(fmt.open):
        m = _V11_CALL.match(part)
        if m is None:
            return text, []
        rest = part[m.end():].strip()
        try:
            args, end = decoder.raw_decode(rest) if rest else ({}, 0)
        except json.JSONDecodeError:
            return text, []
        if not isinstance(args, dict) or rest[end:].strip():
            return text, []
        calls.append(ParsedCall(m.group(1), args))
    return text[:at].strip(), calls


_PARSERS = {"hermes": _parse_hermes, "llama3_json": _parse_llama3, "mistral": _parse_mistral,
            "mistral_v11": _parse_mistral_v11}
