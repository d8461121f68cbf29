"""Keep one request's failure inside a model step from failing every request in the batch.

When running a step raises, the batch is split in halves and each half is run again, down to
single requests: a request that fails on its own is the culprit and is reported as failed, and
the tokens of every request that ran fine in some part are kept. Re-running a part is safe: it
writes the same K/V into the same slots (the scheduler has not advanced anything yet), and
sampling draws from per-request generators seeded by (seed, step), not from the batch.

A failure that no request causes alone (every request fails, even by itself) is not attributed:
it is logged with the step's context and raised as `StepFailedError`, which fails the batch.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable

from corral.core.scheduler_output import SchedulerOutput

log = logging.getLogger("corral.engine")


class RequestFailedError(RuntimeError):
    """One request made the model step raise; it was stopped and the others went on."""

    def __init__(self, request_id: str, cause: BaseException):
        super().__init__(f"generation failed for request {request_id!r} and it was stopped (other requests "
                         f"were not affected): {type(cause).__name__}: {cause}")
        self.request_id = request_id
        self.cause = cause


class StepFailedError(RuntimeError):
    """The model step failed for every request of the batch: the model or engine is at fault."""


def execute_isolating(execute: Callable[[SchedulerOutput], dict], sched: SchedulerOutput) -> tuple[dict, dict]:
    """`execute(sched)` -> (sampled tokens by request id, exception by failed request id).

    Raises StepFailedError (after logging) when every scheduled request fails, alone too."""
    try:
        return execute(sched), {}
    except Exception as error:
        if len(sched.scheduled) <= 1:
            _log_failure(sched, error)
            return {}, {r.request_id: error for r in sched.scheduled}
        first_error = error
    sampled, failed = _bisect(execute, sched)
    if len(failed) == len(sched.scheduled):
        context = ", ".join(f"{r.request_id} ({r.num_tokens} tokens from position {r.start_pos})"
                            for r in sched.scheduled)
        log.error("a model step failed for every request in the batch, alone too; failing them all. "
                  "Batch: %s", context, exc_info=first_error)
        raise StepFailedError(f"the model step failed: {type(first_error).__name__}: {first_error}") from first_error
    for request_id, error in failed.items():
        log.warning("request %s failed in the model step and is stopped; the other %d requests of the batch "
                    "went on", request_id, len(sched.scheduled) - len(failed), exc_info=error)
    return sampled, failed


def _bisect(execute: Callable[[SchedulerOutput], dict], sched: SchedulerOutput) -> tuple[dict, dict]:
    half = len(sched.scheduled) // 2
    sampled, failed = {}, {}
    for part in (sched.scheduled[:half], sched.scheduled[half:]):
        sub = dataclasses.replace(sched, scheduled=part, num_batched_tokens=sum(r.num_tokens for r in part))
        try:
            sampled.update(execute(sub))
        except Exception as error:
            if len(part) == 1:
                failed[part[0].request_id] = error
            else:
                more_sampled, more_failed = _bisect(execute, sub)
                sampled.update(more_sampled)
                failed.update(more_failed)
    return sampled, failed


def _log_failure(sched: SchedulerOutput, error: BaseException) -> None:
    for r in sched.scheduled:
        log.warning("request %s failed in the model step (%d tokens from position %d)", r.request_id,
                    r.num_tokens, r.start_pos, exc_info=error)
