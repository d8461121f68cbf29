"""Continuous batching with chunked prefill, prefix caching and preemption by recompute.

Each step hands out `max_num_batched_tokens`. Running requests go first, oldest first: a
decode takes 1 token, an unfinished prefill takes a chunk of what is left after the decodes
behind it are reserved, so a long prompt never starves decodes. Waiting requests come next:
prefix-cache lookup, then a prompt chunk that fits the budget. When a running request cannot get
a block, the youngest running request is preempted: its blocks are freed and it waits at the
front of the queue to recompute prompt plus output later, continuing where it stopped.

The step loop is `schedule()`, run the model, `update_from_output()`; aborts and
`finish_request` happen between steps.
"""
from __future__ import annotations

import bisect
import itertools
from collections import deque
from dataclasses import dataclass

from corral.core.block_manager import KVCacheManager, blocks_held_under_window
from corral.core.request import Request, RequestStatus
from corral.core.scheduler_output import ScheduledRequest, SchedulerOutput
from corral.core.stop_check import check_stop
from corral.errors import ContextLengthError, ValidationError


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    max_num_seqs: int = 256  # requests running at once
    max_num_batched_tokens: int = 2048  # tokens computed per step, over all requests
    max_model_len: int  # prompt plus output, in tokens
    block_size: int = 16
    num_blocks: int
    enable_prefix_caching: bool = True
    long_prefill_token_threshold: int = 0  # most tokens of one prefill per step; 0: no cap
    # The window of every layer when every layer has one (then blocks behind it are released);
    # None when any layer attends globally.
    sliding_window: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_num_seqs", "max_num_batched_tokens", "max_model_len", "block_size", "num_blocks"):
            if getattr(self, name) < 1:
                raise ValidationError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValidationError(
                "max_num_batched_tokens",
                f"({self.max_num_batched_tokens}) must be at least max_num_seqs ({self.max_num_seqs}) "
                "so every running request can decode in one step",
            )
        if self.long_prefill_token_threshold < 0:
            raise ValidationError("long_prefill_token_threshold", "must be >= 0")
        if self.sliding_window is not None and self.sliding_window < 1:
            raise ValidationError("sliding_window", f"must be None or >= 1, got {self.sliding_window}")


class Scheduler:
    def __init__(self, config: SchedulerConfig):
        self.config = config
        self.kv_cache = KVCacheManager(config.num_blocks, config.block_size, config.enable_prefix_caching,
                                       config.sliding_window)
        # Prompt plus output may not exceed the context, nor the cache (with one slot to spare) unless
        # blocks behind a window are released and what a request holds at once fits.
        self.cache_tokens = config.num_blocks * config.block_size
        if config.sliding_window is not None and blocks_held_under_window(
                config.sliding_window, config.max_num_batched_tokens, config.block_size) <= config.num_blocks:
            self.cache_tokens = config.max_model_len
        self.max_total_tokens = min(config.max_model_len, self.cache_tokens)
        self.requests: dict[str, Request] = {}
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []  # sorted oldest first; the last is preempted first
        self._order: dict[str, tuple[float, int]] = {}  # request id -> (arrival_time, add order)
        self._counter = itertools.count()
        self._finished_ids: set[str] = set()
        self.num_preemptions = 0
        self.prefix_cache_queries = 0  # prompt tokens of first-scheduled requests
        self.prefix_cache_hits = 0  # of which found in the prefix cache

    # -- requests in and out ------------------------------------------------------------------

    def add_request(self, request: Request) -> None:
        """Queue a request; ContextLengthError at once if it can never run."""
        if request.request_id in self.requests:
            raise ValidationError("request_id", f"request {request.request_id!r} is already running")
        n = request.num_prompt_tokens
        if n == 0:
            raise ValidationError("prompt", "the prompt must have at least one token")
        if n + 1 > self.config.max_model_len:
            raise ContextLengthError(
                f"the prompt has {n} tokens but this model's context holds {self.config.max_model_len} "
                "(prompt plus at least one generated token); shorten the prompt or raise max_model_len"
            )
        capacity = self.cache_tokens
        if n + 1 > capacity:
            raise ContextLengthError(
                f"the prompt has {n} tokens but the KV cache holds only {capacity}; shorten the prompt "
                "or give the cache more memory"
            )
        request.status = RequestStatus.WAITING
        self.requests[request.request_id] = request
        self._order[request.request_id] = (request.arrival_time, next(self._counter))
        self.waiting.append(request)

    def abort_request(self, request_id: str) -> Request | None:
        """Finish the request as aborted and free its blocks; None if unknown or already done."""
        return self.finish_request(request_id, "abort")

    def finish_request(self, request_id: str, reason: str, stop_reason: int | str | None = None) -> Request | None:
        """End a request from outside (stop string found, client gone): "stop", "length" or "abort"."""
        request = self.requests.get(request_id)
        if request is None:
            return None
        if request.status == RequestStatus.RUNNING:
            self.running.remove(request)
        else:
            self.waiting.remove(request)
        request.set_finished(reason, stop_reason)
        self._release(request)
        return request

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def kv_usage(self) -> float:
        return self.kv_cache.usage

    # -- one step -----------------------------------------------------------------------------

    def schedule(self) -> SchedulerOutput:
        """Pick the tokens to compute this step and allocate their slots."""
        budget = self.config.max_num_batched_tokens
        num_scheduled: dict[str, int] = {}
        preempted: list[str] = []

        decodes_left = sum(1 for r in self.running if r.num_tokens - r.num_computed_tokens == 1)
        i = 0
        while i < len(self.running) and budget > 0:
            request = self.running[i]
            num_new = request.num_tokens - request.num_computed_tokens
            if num_new == 1:
                decodes_left -= 1
            else:
                num_new = self._cap_prefill(num_new, budget - decodes_left)
                if num_new <= 0:
                    i += 1
                    continue
            while not self.kv_cache.allocate_slots(request, num_new):
                victim = self.running.pop()
                self._preempt(victim)
                preempted.append(victim.request_id)
                if victim is request:
                    break
            if request.status != RequestStatus.RUNNING:
                break
            num_scheduled[request.request_id] = num_new
            budget -= num_new
            i += 1

        if not preempted:
            budget = self._admit_waiting(budget, num_scheduled)

        out = SchedulerOutput(preempted_request_ids=preempted, finished_request_ids=self._finished_ids)
        self._finished_ids = set()
        for request in self.running:
            n = num_scheduled.get(request.request_id)
            if n:
                out.scheduled.append(self._scheduled_request(request, n))
                out.num_batched_tokens += n
        return out

    def update_from_output(
        self, scheduler_output: SchedulerOutput, sampled_token_ids: dict[str, list[int]]
    ) -> list[Request]:
        """Advance the scheduled requests, append sampled tokens, finish the stopped ones.

        Returns the requests that got a token or finished, in batch order.
        """
        changed: list[Request] = []
        for sched in scheduler_output.scheduled:
            request = self.requests.get(sched.request_id)
            if request is None or request.status != RequestStatus.RUNNING:
                continue  # aborted while the step ran
            request.num_computed_tokens += len(sched.token_ids)
            self.kv_cache.cache_blocks(request)
            if not sched.sample:
                continue
            tokens = sampled_token_ids.get(sched.request_id)
            if not tokens:
                raise RuntimeError(f"the model runner returned no token for {sched.request_id!r}")
            for token in tokens:
                request.append_output_token(token)
                stop = check_stop(request, self.max_total_tokens)
                if stop is not None:
                    self.running.remove(request)
                    request.set_finished(*stop)
                    self._release(request)
                    break
            changed.append(request)
        return changed

    # -- helpers ------------------------------------------------------------------------------

    def _cap_prefill(self, num_new: int, budget: int) -> int:
        if self.config.long_prefill_token_threshold:
            num_new = min(num_new, self.config.long_prefill_token_threshold)
        return min(num_new, budget)

    def _admit_waiting(self, budget: int, num_scheduled: dict[str, int]) -> int:
        """Move waiting requests to running while budget, sequence slots and blocks last."""
        deferred: list[Request] = []
        share = self.kv_cache.enable_prefix_caching and bool(self.waiting)
        pending = self._pending_hashes() if share else set()
        while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            request = self.waiting[0]
            hits, num_hit = self.kv_cache.get_computed_blocks(request)
            if self._should_wait_for_prefix(request, len(hits), pending):
                deferred.append(self.waiting.popleft())
                continue
            num_new = self._cap_prefill(request.num_tokens - num_hit, budget)
            if not self.kv_cache.allocate_slots(request, num_new, hits):
                break  # first come, first served: wait for blocks rather than skip ahead
            self.waiting.popleft()
            request.status = RequestStatus.RUNNING
            request.num_computed_tokens = num_hit
            if not request.scheduled_once:
                request.scheduled_once = True
                request.num_cached_tokens = num_hit
                self.prefix_cache_queries += request.num_tokens
                self.prefix_cache_hits += num_hit
            bisect.insort(self.running, request, key=lambda r: self._order[r.request_id])
            num_scheduled[request.request_id] = num_new
            budget -= num_new
            if share:
                pending.update(self._uncomputed_hashes(request))
        self.waiting.extendleft(reversed(deferred))
        return budget

    def _pending_hashes(self) -> set[bytes]:
        """Hashes of full blocks that running requests hold but have not computed yet."""
        pending: set[bytes] = set()
        for request in self.running:
            pending.update(self._uncomputed_hashes(request))
        return pending

    def _uncomputed_hashes(self, request: Request) -> list[bytes]:
        hashes = self.kv_cache.block_hashes(request)
        return hashes[request.num_computed_tokens // self.config.block_size:]

    def _should_wait_for_prefix(self, request: Request, num_hit_blocks: int, pending: set[bytes]) -> bool:
        """Wait a step when the next block of the prompt is being computed by a running request.

        This is how requests sharing a prefix that arrive together (e.g. the n samples of one
        prompt) share its blocks: the first computes them, the rest hit the cache a step later.
        """
        if not pending:
            return False
        hashes = request.block_hashes
        usable = (request.num_tokens - 1) // self.config.block_size
        return num_hit_blocks < min(len(hashes), usable) and hashes[num_hit_blocks] in pending

    def _preempt(self, request: Request) -> None:
        self.kv_cache.free(request)
        request.status = RequestStatus.PREEMPTED
        request.num_computed_tokens = 0
        request.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.appendleft(request)

    def _release(self, request: Request) -> None:
        self.kv_cache.free(request)
        del self.requests[request.request_id]
        del self._order[request.request_id]
        self._finished_ids.add(request.request_id)

    def _scheduled_request(self, request: Request, num_new: int) -> ScheduledRequest:
        start = request.num_computed_tokens
        return ScheduledRequest(
            request_id=request.request_id,
            token_ids=request.all_token_ids[start:start + num_new],
            start_pos=start,
            block_ids=self.kv_cache.get_block_ids(request.request_id),
            sample=start + num_new == request.num_tokens,
            sampling_params=request.sampling_params,
            prompt_token_ids=request.prompt_token_ids,
            generated_token_ids=request.output_token_ids,
            eos_token_ids=request.eos_token_ids,
            seed=request.sampling_params.seed,
        )
