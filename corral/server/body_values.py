"""Refuse request bodies whose values no later stage can take: text that is not valid Unicode,
and nesting deeper than any API needs.

JSON can spell a lone UTF-16 surrogate ("\\ud800"), and Python's JSON parser keeps it in the
string; no tokenizer, file name or UTF-8 encoder takes it afterwards. JSON nested hundreds of
levels deep parses, but would exhaust the recursion limit of whatever walks it next (a chat
template's `tojson`, a copy). The protocol types run `check_body_values` on their input first,
so either is a 400 naming the field, wherever it sits (prompt, message, model name, tools).
"""
from __future__ import annotations

from typing import Any

MAX_DEPTH = 64  # levels of lists and objects; tool schemas need a dozen


def _first_bad(value: Any, path: str, depth: int) -> tuple[str, str] | None:
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return path or "body", (f"contains a lone UTF-16 surrogate (U+{ord(value[e.start]):04X} at character "
                                    f"{e.start}), which is not valid Unicode; send valid UTF-8 text")
        return None
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        return path or "body", f"is nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _first_bad(key, path, depth) or _first_bad(item, f"{path}.{key}" if path else str(key), depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _first_bad(item, f"{path}[{i}]", depth + 1)
            if found:
                return found
    return None


def check_body_values(data: Any) -> Any:
    """`data` unchanged; ValueError naming the first value with a lone surrogate or nested too deep."""
    found = _first_bad(data, "", 0)
    if found:
        where, what = found
        raise ValueError(f"{where} {what}")
    return data
