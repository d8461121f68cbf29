"""Per-request generation settings, validated once when the request is made.

Every field is checked for type, finiteness and range here, before a request can be queued, so
that nothing a client sends can fail inside an engine step (where it would take the whole batch
down with it). The bounds keep every value representable in the sampler's tensors (int64 token
counts, float32 temperatures and penalties) with room to spare.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from corral.core.structured_outputs import StructuredOutputsParams
from corral.errors import ValidationError

MAX_N = 128
MAX_STOP_STRINGS = 16
MAX_STOP_STRING_CHARS = 256
MAX_STOP_TOKEN_IDS = 1024
MAX_TOP_LOGPROBS = 20
MAX_INT = 2**31 - 1  # the most tokens (max_tokens, min_tokens), the largest top_k and token id
MAX_TEMPERATURE = 100.0
MIN_TEMPERATURE = 1e-3  # a positive temperature below this samples at this (logits / t stays finite)
REPETITION_PENALTY_RANGE = (0.01, 100.0)
SEED_RANGE = (-(2**63), 2**64 - 1)


@dataclass
class SamplingParams:
    """How to pick tokens and when to stop, with the field names vLLM users know.

    `temperature == 0` is greedy; a positive temperature below MIN_TEMPERATURE is raised to it.
    `top_k` of 0 or any negative value keeps all tokens. `seed` makes sampling reproducible
    whatever else runs in the same batch. `stop` strings are not included in the returned text.
    `max_tokens=None` generates until the context is full. Construction raises ValidationError
    (naming the field) for any value of the wrong type, not finite, or out of range; token ids in
    `stop_token_ids` are checked against the model's vocabulary when the request is added.
    """

    n: int = 1
    temperature: float = 1.0
    top_k: int = 0  # 0 or negative: all tokens
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    max_tokens: int | None = 16  # None: until the context is full
    min_tokens: int = 0
    ignore_eos: bool = False
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    include_stop_str_in_output: bool = False
    logprobs: int | None = None  # number of top logprobs per generated token; 0 = only the chosen
    skip_special_tokens: bool = True
    # The output must match this grammar (JSON schema, regex, choice, GBNF); None: free text.
    structured_outputs: StructuredOutputsParams | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = _as_list("stop", self.stop)
        self.stop_token_ids = _as_list("stop_token_ids", self.stop_token_ids)
        if self.top_k is None:
            self.top_k = 0
        self.validate()
        if self.top_k < 0:
            self.top_k = 0
        if 0 < self.temperature < MIN_TEMPERATURE:
            self.temperature = MIN_TEMPERATURE

    def validate(self) -> None:
        """Raise ValidationError for the first field of the wrong type or out of range."""
        _int("n", self.n, 1, MAX_N)
        _float("temperature", self.temperature, 0.0, MAX_TEMPERATURE)
        _int("top_k", self.top_k, -MAX_INT, MAX_INT, "(0 or negative: all tokens)")
        _float("top_p", self.top_p, 0.0, 1.0, low_open=True)
        _float("min_p", self.min_p, 0.0, 1.0)
        _float("repetition_penalty", self.repetition_penalty, *REPETITION_PENALTY_RANGE)
        _float("presence_penalty", self.presence_penalty, -2.0, 2.0)
        _float("frequency_penalty", self.frequency_penalty, -2.0, 2.0)
        if self.seed is not None:
            _int("seed", self.seed, *SEED_RANGE)
        if self.max_tokens is not None:
            _int("max_tokens", self.max_tokens, 1, MAX_INT, "(leave it unset to generate until the context is full)")
        _int("min_tokens", self.min_tokens, 0, MAX_INT)
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValidationError("min_tokens", f"({self.min_tokens}) must not exceed max_tokens ({self.max_tokens})")
        for name in ("ignore_eos", "include_stop_str_in_output", "skip_special_tokens"):
            if not isinstance(getattr(self, name), bool):
                raise ValidationError(name, f"must be true or false, got {getattr(self, name)!r}")
        if len(self.stop) > MAX_STOP_STRINGS:
            raise ValidationError("stop", f"at most {MAX_STOP_STRINGS} stop strings, got {len(self.stop)}")
        for s in self.stop:
            if not isinstance(s, str) or not s:
                raise ValidationError("stop", "stop strings must be non-empty strings")
            if len(s) > MAX_STOP_STRING_CHARS:
                raise ValidationError("stop", f"a stop string may have at most {MAX_STOP_STRING_CHARS} characters")
        if len(self.stop_token_ids) > MAX_STOP_TOKEN_IDS:
            raise ValidationError("stop_token_ids", f"at most {MAX_STOP_TOKEN_IDS} stop token ids")
        for token_id in self.stop_token_ids:
            _int("stop_token_ids", token_id, 0, MAX_INT)
        if self.logprobs is not None:
            _int("logprobs", self.logprobs, 0, MAX_TOP_LOGPROBS)
        if self.structured_outputs is not None and not isinstance(self.structured_outputs, StructuredOutputsParams):
            raise ValidationError("structured_outputs", "must be a StructuredOutputsParams")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def _as_list(name: str, value) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise ValidationError(name, f"must be a list, got {type(value).__name__}")
    return list(value)


def _int(name: str, value, low: int, high: int, note: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(name, f"must be an integer, got {value!r}"[:200])
    if not low <= value <= high:
        shown = str(value) if abs(value) < 10**30 else f"a {value.bit_length()}-bit integer"
        raise ValidationError(name, f"must be in [{low}, {high}] {note}, got {shown}".replace("  ", " "))


def _float(name: str, value, low: float, high: float, *, low_open: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValidationError(name, f"must be a number, got {value!r}"[:200])
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValidationError(name, f"must be a finite number, got {value!r}"[:200])
    if not (low < number if low_open else low <= number) or number > high:
        interval = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"
        raise ValidationError(name, f"must be in {interval}, got {number:g}")
