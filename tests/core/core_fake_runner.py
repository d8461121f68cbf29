"""A fake model runner for scheduler tests: one token per KV slot, next token read back from slots.

It follows the SchedulerOutput contract literally, so a wrong block table, a shared block that
gets overwritten or a stale prefix-cache hit changes the generated tokens.
"""
from __future__ import annotations

import zlib
from array import array

from corral.core.request import Request
from corral.core.scheduler import Scheduler
from corral.core.scheduler_output import SchedulerOutput

VOCAB = 64


def next_token(context: list[int]) -> int:
    """Deterministic function of every previous token, like a greedy model."""
    return zlib.crc32(array("q", context).tobytes()) % VOCAB


def reference_tokens(prompt: list[int], max_tokens: int, max_total: int, eos: frozenset[int] = frozenset(),
                     stop_ids: tuple[int, ...] = (), min_tokens: int = 0) -> tuple[list[int], str]:
    """What a request must generate, computed without any cache."""
    seq, out = list(prompt), []
    while True:
        tok = next_token(seq)
        seq.append(tok)
        out.append(tok)
        if len(out) >= min_tokens and (tok in eos or tok in stop_ids):
            return out, "stop"
        if len(out) >= max_tokens or len(seq) >= max_total:
            return out, "length"


class FakeRunner:
    def __init__(self, num_blocks: int, block_size: int):
        self.block_size = block_size
        self.slots: list[int | None] = [None] * (num_blocks * block_size)

    def slot(self, block_ids: list[int], pos: int) -> int:
        return block_ids[pos // self.block_size] * self.block_size + pos % self.block_size

    def execute(self, out: SchedulerOutput) -> dict[str, list[int]]:
        written: set[int] = set()
        for s in out.scheduled:  # write every K/V of the batch first, as a layer does
            end = s.start_pos + len(s.token_ids)
            assert len(s.block_ids) * self.block_size >= end
            for i, tok in enumerate(s.token_ids):
                slot = self.slot(s.block_ids, s.start_pos + i)
                assert slot not in written, "two requests write one slot in a step"
                written.add(slot)
                self.slots[slot] = tok
        sampled = {}
        for s in out.scheduled:
            end = s.start_pos + len(s.token_ids)
            context = [self.slots[self.slot(s.block_ids, p)] for p in range(end)]
            assert None not in context
            if s.sample:
                sampled[s.request_id] = [next_token(context)]
        return sampled


def check_invariants(sched: Scheduler) -> None:
    """Reference counts equal block-table membership; free queue holds exactly the unreferenced."""
    kv = sched.kv_cache
    refs = [0] * kv.num_blocks
    for table in kv.req_to_blocks.values():
        for block in table:
            if block is not None:  # None: released behind a sliding window
                refs[block.block_id] += 1
    for block in kv.blocks:
        assert block.ref_cnt == refs[block.block_id], block
        assert (block in kv.free_queue) == (block.ref_cnt == 0), block
    for block_hash, block in kv.cached.items():
        assert block.block_hash == block_hash
    assert set(kv.req_to_blocks) <= set(sched.requests)
    for r in sched.running:
        assert r.request_id in kv.req_to_blocks
    assert len(sched.running) <= sched.config.max_num_seqs


def run_all(sched: Scheduler, runner: FakeRunner, max_steps: int = 100_000) -> list[SchedulerOutput]:
    """Step until no request is left; returns every step's output."""
    outputs = []
    while sched.has_unfinished_requests():
        out = sched.schedule()
        assert out.num_batched_tokens <= sched.config.max_num_batched_tokens
        sched.update_from_output(out, runner.execute(out))
        check_invariants(sched)
        outputs.append(out)
        assert len(outputs) < max_steps
    return outputs


def make_request(rid: str, prompt: list[int], **params) -> Request:
    from corral.core.sampling_params import SamplingParams

    eos = params.pop("eos", frozenset())
    params.setdefault("temperature", 0.0)
    return Request(rid, prompt, SamplingParams(**params), eos_token_ids=eos)
