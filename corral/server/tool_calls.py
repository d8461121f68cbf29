"""Tool calling for one chat request: check tools, tool_choice and the history, choose the model's
call syntax from its template, constrain the output, and turn the reply back into calls.

- `none`: tools are shown to the model (through its template), nothing is parsed;
- `auto` (the default when tools are given): free text, parsed for calls afterwards; once the
  model opens a call (its family's marker, or for Llama 3 a reply that starts with `{` or
  `<|python_tag|>`), the call is constrained to a declared tool with valid arguments;
- `required` / a named function: the whole reply is constrained to calls (one, unless
  `parallel_tool_calls`), each to a declared tool (or the named one) with arguments that match its
  `parameters` schema.
"""
from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from corral.core.structured_outputs import StructuredOutputsParams
from corral.errors import ValidationError
from corral.server.tool_formats import ParsedCall, ToolFormat, format_for_template, template_supports_tools
from corral.server.tool_grammars import quoted
from corral.server.tool_schema import validate_tools


@dataclass
class ToolPlan:
    """What a chat request's tools mean for its output."""

    format: ToolFormat
    choice: str  # "none", "auto", "required" or "named"
    parallel: bool = True
    names: list[str] = field(default_factory=list)

    @property
    def parses(self) -> bool:
        return self.choice != "none"

    def parse(self, text: str) -> tuple[str, list[ParsedCall]]:
        """(content, calls) of a finished reply; calls only to declared tools."""
        if not self.parses:
            return text, []
        content, calls = self.format.parse(text)
        calls = [c for c in calls if c.name in self.names]
        if not calls:
            return text, []
        return content, calls if self.parallel else calls[:1]


def tool_choice_of(tool_choice: Any, tools: list[dict]) -> tuple[str, str | None]:
    """("none"|"auto"|"required"|"named", the named function or None); 400 naming tool_choice."""
    if tool_choice is None:
        return ("auto" if tools else "none"), None
    if tool_choice in ("none", "auto", "required"):
        if tool_choice == "required" and not tools:
            raise ValidationError("tool_choice", "\"required\" needs at least one tool in `tools`")
        return tool_choice, None
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if tool_choice.get("type", "function") != "function" or not isinstance(name, str):
            raise ValidationError("tool_choice", 'a named choice is {"type": "function", "function": {"name": ...}}')
        if name not in {t["function"]["name"] for t in tools}:
            raise ValidationError("tool_choice", f"names {name!r}, which is not among `tools`")
        return "named", name
    raise ValidationError("tool_choice", f'must be "none", "auto", "required" or a named function, got {tool_choice!r}')


def normalize_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages for the template: assistant `tool_calls` with `arguments` as objects (OpenAI sends
    JSON text; templates, as transformers gives them, expect objects). 400 naming the bad field."""
    out = []
    for i, message in enumerate(messages):
        calls = message.get("tool_calls")
        if not calls:
            out.append(message)
            continue
        if not isinstance(calls, list):
            raise ValidationError(f"messages[{i}].tool_calls", "must be a list of calls")
        message = copy.deepcopy(message)
        for j, call in enumerate(message["tool_calls"]):
            where = f"messages[{i}].tool_calls[{j}]"
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise ValidationError(f"{where}.function", "must be an object with a name and arguments")
            args = fn.get("arguments", {})
            if isinstance(args, str):
                try:
                    args = json.loads(args) if args.strip() else {}
                except json.JSONDecodeError as e:
                    raise ValidationError(f"{where}.function.arguments", f"is not valid JSON: {e}") from None
            if not isinstance(args, dict):
                raise ValidationError(f"{where}.function.arguments", "must be a JSON object")
            fn["arguments"] = args
        out.append(message)
    return out


def plan_tools(tools: Any, tool_choice: Any, parallel: bool | None, tokenizer: Any,
               params: Any) -> ToolPlan | None:
    """Check the request's tools against the model and set `params.structured_outputs` for the
    choice. None when the request has no tools (and no tool_choice that needs some)."""
    tools = validate_tools(tools)
    choice, name = tool_choice_of(tool_choice, tools)
    if not tools:
        return None
    template = _tool_template(tokenizer)
    if not template_supports_tools(template):
        raise ValidationError("tools", "this model's chat template does not support tools")
    fmt = format_for_template(template)
    parallel = True if parallel is None else bool(parallel)
    plan = ToolPlan(fmt, choice, parallel, [t["function"]["name"] for t in tools])
    spell = marker_speller(tokenizer)
    if any(spell(m).startswith("<[") for m in fmt.markers):
        params.skip_special_tokens = False  # the parser must see the markers in the text
    if choice in ("required", "named"):
        if params.structured_outputs is not None:
            raise ValidationError("tool_choice", f"cannot be {tool_choice!r} together with {params.structured_outputs.param}")
        chosen = [t for t in tools if t["function"]["name"] == name] if name else tools
        grammar = fmt.constrained_grammar(chosen, parallel and not name, spell)
        params.structured_outputs = StructuredOutputsParams(lark=grammar, param="tools")
    elif choice == "auto" and params.structured_outputs is None:
        grammar = fmt.triggered_grammar(tools, parallel, spell)
        params.structured_outputs = StructuredOutputsParams(lark=grammar, param="tools")
    return plan


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _tool_template(tokenizer: Any) -> str | None:
    templates = getattr(tokenizer, "chat_templates", {}) or {}
    return templates.get("tool_use") or getattr(tokenizer, "chat_template", None)


def marker_speller(tokenizer: Any):
    """A function spelling a marker for a Lark grammar: `<[id]>` when the marker is one special
    token of the vocabulary (a grammar can only name such a token), else a quoted string."""
    def spell(marker: str) -> str:
        ids = tokenizer.encode(marker, add_special_tokens=False)
        if len(ids) == 1 and tokenizer.is_special(ids[0]):
            return f"<[{ids[0]}]>"
        return quoted(marker)

    return spell
