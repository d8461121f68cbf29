"""Checks on the tools a request declares, and the JSON schema a call to one of them must match."""
from __future__ import annotations

import re
from typing import Any

from corral.errors import ValidationError

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def validate_tools(tools: Any, param: str = "tools") -> list[dict[str, Any]]:
    """`tools` as OpenAI and Ollama send them (`{"type": "function", "function": {"name",
    "description", "parameters"}}`), checked; returns them as plain dicts, unchanged."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ValidationError(param, "must be a list of {\"type\": \"function\", \"function\": {...}} objects")
    seen = set()
    for i, tool in enumerate(tools):
        where = f"{param}[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise ValidationError(f"{where}.type", "only tools of type \"function\" are supported")
        fn = tool.get("function")
        if not isinstance(fn, dict):
            raise ValidationError(f"{where}.function", "must be an object with a name")
        name = fn.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValidationError(f"{where}.function.name", "must be 1-64 letters, digits, _ . or -")
        if name in seen:
            raise ValidationError(f"{where}.function.name", f"{name!r} is declared twice")
        seen.add(name)
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise ValidationError(f"{where}.function.parameters", "must be a JSON schema object")
    return tools


def call_schema(name: str, parameters: dict[str, Any] | None, args_key: str) -> dict[str, Any]:
    """Schema of one call object: `{"name": name, args_key: <arguments matching parameters>}`."""
    args = parameters if parameters else {"type": "object"}
    return {
        "type": "object",
        "properties": {"name": {"const": name}, args_key: args},
        "required": ["name", args_key],
        "additionalProperties": False,
    }
