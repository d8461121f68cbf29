"""Model parameters as Ollama types them (`PARAMETER num_ctx 4096` -> {"num_ctx": 4096}).

`stop` is the one parameter that repeats; its values collect into a list.
"""
from __future__ import annotations

import math
from typing import Any

from corral.errors import StoreError

INT_PARAMS = frozenset({
    "num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "mirostat", "num_ctx",
    "num_batch", "num_gpu", "main_gpu", "num_thread",
})
FLOAT_PARAMS = frozenset({
    "typical_p", "top_p", "min_p", "temperature", "repeat_penalty", "presence_penalty",
    "frequency_penalty", "mirostat_tau", "mirostat_eta", "tfs_z",
})
BOOL_PARAMS = frozenset({"penalize_newline", "use_mmap", "use_mlock", "numa", "low_vram", "f16_kv", "vocab_only"})
LIST_PARAMS = frozenset({"stop"})
KNOWN_PARAMS = INT_PARAMS | FLOAT_PARAMS | BOOL_PARAMS | LIST_PARAMS
INT_LIMIT = 1 << 63  # integers must fit a signed 64-bit value
_TRUE = {"1", "t", "true", "yes", "on"}
_FALSE = {"0", "f", "false", "no", "off"}


def typed_value(key: str, text: str) -> Any:
    """Convert one PARAMETER value; StoreError for an unknown key or a value of the wrong type."""
    if key not in KNOWN_PARAMS:
        raise StoreError(f"unknown parameter {key!r}; known parameters: {', '.join(sorted(KNOWN_PARAMS))}")
    try:
        if key in INT_PARAMS:
            value = int(text)
            if not -INT_LIMIT <= value < INT_LIMIT:
                raise ValueError
            return value
        if key in FLOAT_PARAMS:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        kind = "an integer of at most 64 bits" if key in INT_PARAMS else "a number (not NaN or infinite)"
        raise StoreError(f"parameter {key} must be {kind}, got {text[:80]!r}") from None
    if key in BOOL_PARAMS:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise StoreError(f"parameter {key} must be true or false, got {text!r}")
    return text


def add_parameter(params: dict[str, Any], key: str, text: str) -> None:
    """Set `key` in `params` (appending for list parameters such as `stop`)."""
    key = key.lower()
    value = typed_value(key, text)
    if key in LIST_PARAMS:
        params.setdefault(key, []).append(value)
    else:
        params[key] = value


def format_value(value: Any) -> str:
    """A parameter value as a Modelfile writes it: strings quoted, bools lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)
