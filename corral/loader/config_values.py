"""Typed reads of untrusted configuration values (config.json fields, GGUF metadata).

A model file is input like any request body: each value is checked for its type and range here,
before anything is computed or allocated from it. Every failure is a ModelFileError naming the
file and the key, with the value shown short. Ranges are wide (real models sit far inside them);
what bounds sizes for real is the file's tensors, checked by `loader.shape_checks`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from corral.errors import ModelFileError

MAX_DIM = (1 << 31) - 1  # any single size (vocabulary, width, layers, context): int32 indexing stays valid


def show(value: Any) -> str:
    """`value` for an error message, at most about 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_int(path: str | Path, key: str, value: Any, lo: int = 1, hi: int = MAX_DIM) -> int:
    """`value` as an int in [lo, hi]. Accepts ints and integral floats (some converters write 4096.0),
    not bools, strings or arrays."""
    if isinstance(value, (bool, np.bool_)):
        raise _bad(path, key, value, "an integer, not a boolean")
    if isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        number = int(value)
    else:
        raise _bad(path, key, value, "an integer")
    if not lo <= number <= hi:
        raise _bad(path, key, value, f"an integer from {lo} to {hi}")
    return number


def read_float(path: str | Path, key: str, value: Any, lo: float = 0.0, hi: float = math.inf,
               lo_open: bool = True) -> float:
    """`value` as a finite float in (lo, hi] (or [lo, hi] with lo_open=False)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _bad(path, key, value, "a number")
    try:
        number = float(value)
    except OverflowError:  # an int past float range
        raise _bad(path, key, value, "a finite number") from None
    if not math.isfinite(number):
        raise _bad(path, key, value, "a finite number")
    if number < lo or (lo_open and number == lo) or number > hi:
        low = f"above {lo}" if lo_open else f"at least {lo}"
        raise _bad(path, key, value, f"a number {low}" + ("" if hi == math.inf else f" and at most {hi}"))
    return number


def read_bool(path: str | Path, key: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise _bad(path, key, value, "true or false")


def read_str(path: str | Path, key: str, value: Any, max_len: int = 256) -> str:
    if isinstance(value, str) and len(value) <= max_len:
        return value
    raise _bad(path, key, value, f"a string of at most {max_len} characters")


def read_token_id(path: str | Path, key: str, value: Any) -> int | None:
    """A token id, or None for an absent one (null; some configs write -1 for "none")."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value == -1):
        return None
    return read_int(path, key, value, lo=0, hi=MAX_DIM - 1)


def _bad(path, key: str, value: Any, wanted: str) -> ModelFileError:
    return ModelFileError(path, f"{key} is {show(value)}, but must be {wanted}; the model's configuration is corrupt")
