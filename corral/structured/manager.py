"""Per-request grammar matchers, owned by the engine: compiled once per grammar, advanced token by
token, asked for the step's token masks.

The engine's contract with this class, every step:
- `add(request_id, spec)` when a request (each of its `n` samples) is queued; raises
  ValidationError before anything is queued when the grammar is invalid;
- `masks(request_ids)` for the requests that sample this step: a bitmask row per request (bit
  `t % 32` of word `t // 32` set when token t is allowed), and the requests whose grammar admits
  no token at all (they must be finished, not sampled);
- `accept(request_id, token)` for each sampled token: "go on", "done" (the grammar is complete and
  admits nothing more: finish the request) or an error message;
- `remove(request_id)` when a request ends in any way (finished, aborted).
A request whose thought runs out of its token budget gets a fresh matcher that admits only
`</think>` and then its constraint. A preempted request keeps its matcher: its generated tokens
stay, only its KV cache is recomputed.
Compiled grammars are cached by grammar text (least recently used first out), so a schema sent
again costs a copy of its matcher, not a new lexer.
"""
from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

from corral.core.structured_outputs import StructuredOutputsParams
from corral.errors import ValidationError
from corral.structured.grammar import to_grammar
from corral.structured.thinking import ThoughtBudget, after_thinking
from corral.structured.vocabulary import build_ll_tokenizer

MAX_CACHED_GRAMMARS = 128


@dataclass
class StepMasks:
    """Token masks for one step: `rows[request_id]` is a (W,) int32 view into `bitmask` (N, W)."""

    bitmask: torch.Tensor
    rows: dict[str, torch.Tensor] = field(default_factory=dict)
    dead: dict[str, str] = field(default_factory=dict)  # request id -> why no token is admitted


class StructuredOutputManager:
    def __init__(self, tokenizer: Any, num_ids: int):
        self.tokenizer = tokenizer
        self.num_ids = num_ids
        self._ll_tokenizer = None
        self._vocabulary_lock = threading.Lock()
        self._compiled: OrderedDict[str, Any] = OrderedDict()  # grammar text -> matcher at its start
        self._matchers: dict[str, Any] = {}
        self._specs: dict[str, StructuredOutputsParams] = {}
        self._budgets: dict[str, ThoughtBudget] = {}  # request id -> its thought's token budget, while thinking

    @property
    def active(self) -> bool:
        return bool(self._matchers)

    def has(self, request_id: str) -> bool:
        return request_id in self._matchers

    def compile(self, spec: StructuredOutputsParams):
        """A fresh matcher for `spec` (from the cache when the same grammar was seen)."""
        import llguidance

        grammar = to_grammar(spec)
        if spec.thinking is not None:
            grammar = after_thinking(grammar, spec.thinking, self.tokenizer)
        template = self._compiled.get(grammar)
        if template is None:
            limits = llguidance.LLParserLimits(verbose_errors=False)
            template = llguidance.LLMatcher(self.vocabulary(), grammar, log_level=0, limits=limits)
            if template.is_error():
                raise ValidationError(spec.param, f"the grammar cannot be used: {_first_line(template.get_error())}")
            self._compiled[grammar] = template
            while len(self._compiled) > MAX_CACHED_GRAMMARS:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(grammar)
        return template.deep_copy()

    def add(self, request_id: str, spec: StructuredOutputsParams, matcher=None) -> None:
        self._matchers[request_id] = matcher if matcher is not None else self.compile(spec)
        self._specs[request_id] = spec
        if spec.thinking_budget is not None:
            self._budgets[request_id] = ThoughtBudget(spec.thinking_budget, opened=spec.thinking == "open")

    def remove(self, request_id: str) -> None:
        self._matchers.pop(request_id, None)
        self._specs.pop(request_id, None)
        self._budgets.pop(request_id, None)

    def masks(self, request_ids: list[str]) -> StepMasks | None:
        """Masks for the constrained ones among `request_ids` (None when there are none)."""
        ids = [r for r in request_ids if r in self._matchers]
        if not ids:
            return None
        words = (self.num_ids + 31) // 32
        bitmask = torch.zeros(len(ids), words, dtype=torch.int32)  # (N, W)
        # One matcher after another on this thread: measured faster than llguidance's thread pool
        # on a few shared cores (docs/structured-output.md); each call releases the GIL.
        for i, r in enumerate(ids):
            row = bitmask[i]
            self._matchers[r].unsafe_compute_mask_ptr(row.data_ptr(), words * 4)
        out = StepMasks(bitmask)
        for i, r in enumerate(ids):
            matcher = self._matchers[r]
            if matcher.is_error():
                out.dead[r] = f"the output grammar admits no token here ({_first_line(matcher.get_error())})"
            elif not bool(bitmask[i].any()):
                out.dead[r] = "the output grammar admits no token here"
            else:
                out.rows[r] = bitmask[i]
        return out

    def accept(self, request_id: str, token_id: int) -> str | None:
        """Advance by one sampled token: None to go on, "done" when the grammar is complete and
        admits nothing more, else an error message."""
        matcher = self._matchers.get(request_id)
        if matcher is None:
            return None
        if not matcher.consume_token(token_id):
            return f"the output grammar rejected token {token_id} ({_first_line(matcher.get_error())})"
        if matcher.is_stopped():
            return "done"
        budget = self._budgets.get(request_id)
        if budget is not None:
            if budget.add(self.tokenizer.token_to_bytes(token_id)):  # out of budget: close the thought now
                spec = dataclasses.replace(self._specs[request_id], thinking="closing", thinking_budget=None)
                self._matchers[request_id] = self.compile(spec)
            if budget.done:
                del self._budgets[request_id]
        return None

    def vocabulary(self):
        """The vocabulary as llguidance sees it, built on first use (about a second for 150k
        tokens; safe to call from another thread first, so the engine's thread need not wait)."""
        with self._vocabulary_lock:
            if self._ll_tokenizer is None:
                self._ll_tokenizer = build_ll_tokenizer(self.tokenizer, self.num_ids)
            return self._ll_tokenizer


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no detail"
