"""From sampled tokens to text: incremental detokenizing, stop strings, logprobs, and the
RequestOutput deltas the APIs stream. Runs in the engine loop, next to the scheduler."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from corral.core.outputs import CompletionOutput, Logprob, RequestOutput
from corral.core.request import Request
from corral.core.sampling_params import SamplingParams
from corral.engine.model_runner import SampledToken


@dataclass
class CompletionState:
    """One sample (child request) of a user request."""

    index: int
    detokenizer: object
    params: SamplingParams
    text: str = ""  # everything decoded so far, stop string removed
    emitted_chars: int = 0  # of `text`, already handed out as deltas
    emitted_tokens: int = 0
    stop_checked_chars: int = 0  # of `text`, already searched for stop strings
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[dict[int, Logprob]] = field(default_factory=list)
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    reported_finished: bool = False


@dataclass
class ParentState:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    completions: list[CompletionState]
    arrival_time: float = field(default_factory=time.monotonic)
    first_token_time: float | None = None
    finished_time: float | None = None
    num_cached_tokens: int = 0

    @property
    def finished(self) -> bool:
        return all(c.finish_reason is not None for c in self.completions)


class OutputProcessor:
    def __init__(self, tokenizer, make_detokenizer):
        self.tokenizer = tokenizer
        self.make_detokenizer = make_detokenizer
        self.parents: dict[str, ParentState] = {}
        self.child_to_parent: dict[str, tuple[str, int]] = {}

    def add(self, parent_id: str, prompt: str | None, prompt_ids: list[int], params: SamplingParams,
            child_ids: list[str]) -> None:
        states = [
            CompletionState(i, self.make_detokenizer(params.skip_special_tokens), params) for i in range(len(child_ids))
        ]
        self.parents[parent_id] = ParentState(parent_id, prompt, list(prompt_ids), states)
        for i, cid in enumerate(child_ids):
            self.child_to_parent[cid] = (parent_id, i)

    def process(self, request: Request, sampled: SampledToken | None) -> str | None:
        """Take a request's newest token; returns a stop string when one was found (the caller
        then finishes the request in the scheduler), else None."""
        parent_id, idx = self.child_to_parent[request.request_id]
        parent = self.parents[parent_id]
        state = parent.completions[idx]
        if parent.first_token_time is None:
            parent.first_token_time = time.monotonic()
            parent.num_cached_tokens = request.num_cached_tokens
        new_ids = request.output_token_ids[len(state.token_ids):]
        state.token_ids.extend(new_ids)
        if sampled is not None and sampled.logprob is not None:
            state.logprobs.append(self._logprob_entry(sampled))
        hit = None
        if new_ids and state.finish_reason is None:
            # The EOS or stop token that ended generation is kept in token_ids, not in the text.
            ended_by_token = request.is_finished and request.finish_reason == "stop" and (
                request.stop_reason is None or isinstance(request.stop_reason, int)
            )
            text_ids = new_ids[:-1] if ended_by_token else new_ids
            state.text += state.detokenizer.add(text_ids) if text_ids else ""
            if request.is_finished:
                state.text += state.detokenizer.flush()
            hit = self._find_stop(state)
        if hit is not None:
            state.finish_reason, state.stop_reason = "stop", hit
        elif request.is_finished:
            state.finish_reason, state.stop_reason = request.finish_reason, request.stop_reason
        if parent.finished and parent.finished_time is None:
            parent.finished_time = time.monotonic()
        return hit

    def finish(self, child_id: str, reason: str) -> None:
        """A request ended outside the token path (abort)."""
        parent_id, idx = self.child_to_parent.get(child_id, (None, None))
        if parent_id is None or parent_id not in self.parents:
            return
        state = self.parents[parent_id].completions[idx]
        if state.finish_reason is None:
            state.finish_reason = reason

    def _find_stop(self, state: CompletionState) -> str | None:
        stops = state.params.stop
        if not stops:
            return None
        # Only the tail can contain a new match: look back as far as the longest stop string.
        window_start = max(0, state.stop_checked_chars - max(len(s) for s in stops) + 1)
        state.stop_checked_chars = len(state.text)
        best = None
        for s in stops:
            pos = state.text.find(s, window_start)
            if pos != -1 and (best is None or pos < best[0]):
                best = (pos, s)
        if best is None:
            return None
        pos, s = best
        state.text = state.text[: pos + len(s)] if state.params.include_stop_str_in_output else state.text[:pos]
        return s

    def _logprob_entry(self, sampled: SampledToken) -> dict[int, Logprob]:
        entry = {sampled.token_id: Logprob(sampled.token_id, sampled.logprob, sampled.rank, self._piece(sampled.token_id))}
        for rank, (tid, lp) in enumerate(sampled.top or [], start=1):
            if tid not in entry:
                entry[tid] = Logprob(tid, lp, rank, self._piece(tid))
        return entry

    def _piece(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)

    def delta(self, parent_id: str) -> RequestOutput | None:
        """What is new since the last call (None when nothing is); text that could still turn
        into a stop string is held back until it can't."""
        parent = self.parents[parent_id]
        outputs = []
        for state in parent.completions:
            done = state.finish_reason is not None
            if state.reported_finished:
                continue
            hold = 0 if done or not state.params.stop else max(len(s) for s in state.params.stop) - 1
            end = max(state.emitted_chars, len(state.text) - hold)
            text = state.text[state.emitted_chars:end]
            ids = state.token_ids[state.emitted_tokens:]
            if not text and not ids and not done:
                continue
            lps = state.logprobs[state.emitted_tokens:] if state.params.logprobs is not None else None
            outputs.append(CompletionOutput(state.index, text, ids, state.finish_reason if done else None,
                                            state.stop_reason if done else None, lps))
            state.emitted_chars, state.emitted_tokens = end, len(state.token_ids)
            state.reported_finished = done
        if not outputs:
            return None
        return RequestOutput(parent_id, parent.prompt, parent.prompt_token_ids, outputs, parent.finished,
                             parent.num_cached_tokens, self._metrics(parent))

    def final(self, parent_id: str) -> RequestOutput:
        """The whole result (non-streaming APIs)."""
        parent = self.parents[parent_id]
        outputs = [
            CompletionOutput(s.index, s.text, list(s.token_ids), s.finish_reason, s.stop_reason,
                             list(s.logprobs) if s.params.logprobs is not None else None)
            for s in parent.completions
        ]
        return RequestOutput(parent_id, parent.prompt, parent.prompt_token_ids, outputs, parent.finished,
                             parent.num_cached_tokens, self._metrics(parent))

    def remove(self, parent_id: str) -> None:
        self.parents.pop(parent_id, None)
        for cid in [c for c, (p, _) in self.child_to_parent.items() if p == parent_id]:
            del self.child_to_parent[cid]

    @staticmethod
    def _metrics(parent: ParentState) -> dict:
        return {
            "arrival_time": parent.arrival_time,
            "first_token_time": parent.first_token_time,
            "finished_time": parent.finished_time,
            "num_prompt_tokens": len(parent.prompt_token_ids),
            "num_cached_tokens": parent.num_cached_tokens,
        }
