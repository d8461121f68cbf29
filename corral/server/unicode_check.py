"""Refuse request bodies holding text that is not valid Unicode.

JSON can spell a lone UTF-16 surrogate ("\\ud800"), and Python's JSON parser keeps it in the
string; no tokenizer, file name or UTF-8 encoder takes it afterwards. The protocol types run
`valid_unicode` on their input first, so such a body is a 400 naming the field, wherever the
string sits (prompt, message, model name, stop string, option).
"""
from __future__ import annotations

from typing import Any


def _first_bad(value: Any, path: str) -> tuple[str, str] | None:
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return path or "body", f"U+{ord(value[e.start]):04X} at character {e.start}"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _first_bad(key, path) or _first_bad(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _first_bad(item, f"{path}[{i}]")
            if found:
                return found
    return None


def valid_unicode(data: Any) -> Any:
    """`data` unchanged; ValueError naming the first string with a lone surrogate."""
    found = _first_bad(data, "")
    if found:
        where, what = found
        raise ValueError(f"{where} contains a lone UTF-16 surrogate ({what}), which is not valid Unicode; "
                         "send valid UTF-8 text")
    return data
