"""The sampling a model's own files recommend, as Ollama option names (`temperature`, `top_p`, ...).

Where they come from, for a model file or folder:
- a bundled model: the values its model card gives (`corral.store.default_model`);
- a Hugging Face folder: `generation_config.json` (`temperature`, `top_p`, `top_k`, `min_p`,
  `repetition_penalty`), as vLLM reads it (`do_sample` is not consulted);
- a GGUF file: the `general.sampling.*` keys llama.cpp's converter writes (`temp`, `top_p`,
  `top_k`, `min_p`, `penalty_repeat`, `penalty_last_n`).

A Modelfile's PARAMETERs go over these, and a request's own values over both
(`corral.core.model_options`). Unreadable or out-of-range values are left out, never an error:
the model still loads and the request still decides.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

_GENERATION_CONFIG = {  # generation_config.json key -> Ollama option
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
    "repetition_penalty": "repeat_penalty",
}
_GGUF_KEYS = {  # GGUF metadata key -> Ollama option
    "general.sampling.temp": "temperature", "general.sampling.top_p": "top_p",
    "general.sampling.top_k": "top_k", "general.sampling.min_p": "min_p",
    "general.sampling.penalty_repeat": "repeat_penalty", "general.sampling.penalty_last_n": "repeat_last_n",
}
_INTEGER_OPTIONS = frozenset({"top_k", "repeat_last_n"})


def file_options(path: str | Path, kind: str) -> dict[str, Any]:
    """The recommended options for the model at `path` ("gguf" file or "hf" folder); {} if none."""
    from corral.store.default_model import bundled_at

    path = Path(path)
    bundled = bundled_at(path)
    if bundled is not None:
        return dict(bundled.params)
    try:
        stat = path.stat() if kind == "gguf" else (path / "generation_config.json").stat()
    except OSError:
        return {}
    return dict(_read_options(str(path), kind, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _read_options(path: str, kind: str, mtime_ns: int, size: int) -> tuple[tuple[str, Any], ...]:
    """Cached per file version: the server resolves a model on every request."""
    if kind == "gguf":
        values = _gguf_values(Path(path))
        mapping = _GGUF_KEYS
    else:
        values = _json_object(Path(path) / "generation_config.json")
        mapping = _GENERATION_CONFIG
    options = {}
    for key, option in mapping.items():
        value = _valid(option, values.get(key))
        if value is not None:
            options[option] = value
    return tuple(options.items())


def _valid(option: str, value: Any) -> Any:
    """The value if it is a usable number for `option`, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if option in _INTEGER_OPTIONS:
        return int(value) if value == int(value) and value >= 0 else None
    if option == "top_p" and not 0 < value <= 1:
        return None
    if option == "min_p" and not 0 <= value <= 1:
        return None
    if option in ("temperature", "repeat_penalty") and value < 0:
        return None
    return float(value)


def _gguf_values(path: Path) -> dict[str, Any]:
    try:
        from corral.loader.gguf_file import GGUFFile

        metadata = GGUFFile(path).metadata
        return {key: _scalar(metadata.get(key)) for key in _GGUF_KEYS if key in metadata}
    except Exception:  # tolerant by contract: the loader reports a bad file when it loads it
        return {}


def _scalar(value: Any) -> Any:
    """A numpy scalar or a plain number as a Python number; anything else unchanged."""
    return value.item() if hasattr(value, "item") and getattr(value, "shape", None) == () else value


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
