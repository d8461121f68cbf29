"""What the scheduler hands the model runner each step: the only contract between them.

For each `ScheduledRequest` the runner must:
- write the K/V of `token_ids` at positions `start_pos + i` into slot
  `block_ids[pos // block_size] * block_size + pos % block_size`;
- attend each of those tokens over positions [0, pos] of the same request (positions below
  `start_pos` are already in the cache, possibly in blocks shared with other requests: never
  write below `start_pos`);
- when `sample` is True, sample one token from the logits of the last position and return it
  under `request_id`.
Seeded sampling must not depend on batch composition or on how many times the request was
preempted: derive the randomness from (`seed`, `len(generated_token_ids)`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from corral.core.sampling_params import SamplingParams


@dataclass
class ScheduledRequest:
    request_id: str
    token_ids: list[int]  # the tokens to compute this step, positions start_pos...
    start_pos: int  # the request's num_computed_tokens before this step
    block_ids: list[int]  # the request's whole block table, covering start_pos + len(token_ids)
    sample: bool  # this chunk reaches the last known token: produce the next one
    sampling_params: SamplingParams
    # Live views of the request's lists for penalties and min_tokens: read during the step only.
    prompt_token_ids: list[int] = field(default_factory=list)
    generated_token_ids: list[int] = field(default_factory=list)
    eos_token_ids: frozenset[int] = frozenset()  # masked while fewer than min_tokens were generated
    seed: int | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


@dataclass
class SchedulerOutput:
    scheduled: list[ScheduledRequest] = field(default_factory=list)
    num_batched_tokens: int = 0  # sum of len(token_ids) over `scheduled`
    # Requests whose blocks were taken back this step; they return later with start_pos 0.
    preempted_request_ids: list[str] = field(default_factory=list)
    # Requests finished or aborted since the last step: drop their per-request state.
    finished_request_ids: set[str] = field(default_factory=set)

    @property
    def is_empty(self) -> bool:
        return not self.scheduled
