"""One generation request as the scheduler sees it: token ids, progress and status.

There are no prefill and decode phases. A request knows `num_tokens` (prompt plus generated) and
`num_computed_tokens` (tokens whose K/V sit in the cache); each step the scheduler lets the
computed count catch up, and a step that reaches the end samples one more token.
"""
from __future__ import annotations

import enum
import time

from corral.core.sampling_params import SamplingParams


class RequestStatus(enum.IntEnum):
    WAITING = enum.auto()
    RUNNING = enum.auto()
    PREEMPTED = enum.auto()  # waiting again after its blocks were taken back; recomputes
    FINISHED_STOPPED = enum.auto()
    FINISHED_LENGTH = enum.auto()
    FINISHED_ABORTED = enum.auto()

    @property
    def is_finished(self) -> bool:
        return self >= RequestStatus.FINISHED_STOPPED


FINISH_STATUS = {
    "stop": RequestStatus.FINISHED_STOPPED,
    "length": RequestStatus.FINISHED_LENGTH,
    "abort": RequestStatus.FINISHED_ABORTED,
    "error": RequestStatus.FINISHED_ABORTED,  # the request cannot go on (e.g. its grammar admits no token)
}


class Request:
    """Mutable per-request state, owned by the scheduler.

    `block_hashes` caches the chained hashes of the full blocks of `all_token_ids`, filled in by
    the KV cache manager as blocks become full; it is valid for one block size only.
    """

    def __init__(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        sampling_params: SamplingParams,
        eos_token_ids: frozenset[int] = frozenset(),
        arrival_time: float | None = None,
    ):
        self.request_id = request_id
        self.prompt_token_ids = list(prompt_token_ids)
        self.sampling_params = sampling_params
        self.eos_token_ids = frozenset(eos_token_ids)
        self.arrival_time = time.monotonic() if arrival_time is None else arrival_time
        self.output_token_ids: list[int] = []
        self._all_token_ids = list(self.prompt_token_ids)
        self.num_computed_tokens = 0
        self.status = RequestStatus.WAITING
        self.finish_reason: str | None = None  # "stop", "length", "abort"
        self.stop_reason: int | str | None = None  # stop token id or stop string
        self.num_cached_tokens = 0  # prefix-cache hit length when first scheduled
        self.num_preemptions = 0
        self.block_hashes: list[bytes] = []
        self.scheduled_once = False

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self._all_token_ids)

    @property
    def all_token_ids(self) -> list[int]:
        """Prompt then generated tokens. A live list: read it, don't change it."""
        return self._all_token_ids

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    def append_output_token(self, token_id: int) -> None:
        self.output_token_ids.append(token_id)
        self._all_token_ids.append(token_id)

    def set_finished(self, reason: str, stop_reason: int | str | None = None) -> None:
        """Mark finished with `reason` in FINISH_STATUS; the caller frees the blocks."""
        self.status = FINISH_STATUS[reason]
        self.finish_reason = reason
        self.stop_reason = stop_reason

    def __repr__(self) -> str:
        return (
            f"Request({self.request_id!r}, {self.status.name}, tokens={self.num_tokens}, "
            f"computed={self.num_computed_tokens})"
        )
