"""The one internal request type every API is translated into, and what a model may add to it.

The OpenAI and Ollama layers are pure functions from their request types to `GenerateRequest`
and from engine deltas (`corral.core.outputs.RequestOutput`) back to their chunk types; only
`corral.server.generation` talks to the engine.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from corral.core.sampling_params import SamplingParams
from corral.errors import ValidationError


@dataclass(frozen=True)
class ModelDefaults:
    """What a model's Modelfile sets: default options (Ollama names, e.g. `temperature`,
    `num_predict`, `stop`) that a request's own values override, a default system prompt, and
    MESSAGE turns put before every conversation (as Ollama does)."""

    options: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    messages: tuple[dict[str, str], ...] = ()


@dataclass
class GenerateRequest:
    """One generation request, whatever API it came through.

    Exactly one of `prompt` and `messages` is set. `prompt` is used as is when `raw` (OpenAI
    completions, Ollama `raw`); otherwise it becomes a user message rendered with the chat template.
    `messages` are OpenAI/Ollama-shaped dicts (`role`, `content`, ...) passed to the template.
    `keep_alive` is in seconds: None means the server default, 0 unloads the model once idle,
    a negative value keeps it loaded forever.
    """

    model: str
    params: SamplingParams
    prompt: str | list[int] | None = None
    messages: list[dict[str, Any]] | None = None
    system: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # turns before a non-raw `prompt`
    raw: bool = False
    context: list[int] | None = None  # Ollama: token ids of an earlier exchange to continue
    tools: list[dict[str, Any]] | None = None
    keep_alive: float | None = None
    tool_choice: Any = None  # OpenAI's: "none", "auto", "required" or {"type": "function", ...}
    parallel_tool_calls: bool | None = None
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)  # extra template variables
    think: bool | None = None  # Ollama's: thinking on or off (templates that take enable_thinking)
    thinking_token_budget: int | None = None  # most tokens the reply may think for before `</think>`
    num_ctx: int | None = None  # Ollama's: the context length to run the model at (reloads it if other)

    @property
    def is_chat(self) -> bool:
        return self.messages is not None


MAX_KEEP_ALIVE_S = 100 * 365 * 86400.0  # longer than this (or infinite) means forever
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_keep_alive(value: float | int | str | None) -> float | None:
    """Seconds from an Ollama `keep_alive`: a number of seconds or a Go duration ("5m", "1h30m",
    "-1s"); None stays None (server default). A negative value, or one over MAX_KEEP_ALIVE_S
    (infinity included), means forever and is returned as -1. Raises ValidationError on anything
    else (NaN, text that is not a duration)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValidationError("keep_alive", f"must be a duration like '5m' or a number of seconds, got {value!r}"[:200])
    if isinstance(value, (int, float)):
        return _bounded_seconds(value)
    text = value.strip()
    try:
        return _bounded_seconds(float(text))
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    parts = _DURATION_PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise ValidationError("keep_alive", f"must be a duration like '5m', '1h30m' or '-1', got {value!r}"[:200])
    return _bounded_seconds(sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


def _bounded_seconds(value: float | int) -> float:
    try:
        seconds = float(value)
    except OverflowError:  # an integer too large for a float
        seconds = math.inf if value > 0 else -math.inf
    if math.isnan(seconds):
        raise ValidationError("keep_alive", "must be a number of seconds or a duration like '5m', not NaN")
    return -1.0 if seconds < 0 or seconds > MAX_KEEP_ALIVE_S else seconds
