"""Turns a SchedulerOutput into one forward pass and one sampled token per finishing chunk."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from corral.core.scheduler_output import ScheduledRequest, SchedulerOutput
from corral.layers.attention import AttentionMetadata, get_backend
from corral.layers.sampler import SamplingBatch, sample
from corral.models.forward_batch import ForwardBatch
from corral.structured.manager import StepMasks


@dataclass
class SampledToken:
    token_id: int
    logprob: float | None = None
    rank: int | None = None
    top: list[tuple[int, float]] | None = None  # (token id, logprob), most likely first


class ModelRunner:
    """Owns the model, the KV tensors and the per-step input preparation."""

    def __init__(self, model, kv_caches: list[torch.Tensor], block_size: int, device="cpu", backend: str = "auto"):
        self.model = model
        self.kv_caches = kv_caches
        self.block_size = block_size
        self.device = torch.device(device)
        self.backend = get_backend(backend, self.device)
        self.graphs = None  # DecodeGraphs, set by the engine on CUDA unless --enforce-eager
        self.sliding_window = model.config.sliding_window

    @torch.inference_mode()
    def execute(self, sched: SchedulerOutput, masks: StepMasks | None = None) -> dict[str, SampledToken]:
        """Run the step; `masks` holds the token bitmasks of the requests a grammar constrains."""
        if sched.is_empty:
            return {}
        batch = self._prepare(sched.scheduled)
        ends = batch.attn.query_start_loc[1:]
        rows = [i for i, r in enumerate(sched.scheduled) if r.sample]
        if len(rows) != ends[-1]:  # not every token samples: the last token of each row that does
            batch.output_rows = torch.tensor([ends[i] - 1 for i in rows], dtype=torch.long, device=self.device)
        graphs = self.graphs  # (N, hidden) below
        picked = graphs.run(batch) if graphs is not None and graphs.fits(batch) else self.model(batch)
        if not rows:
            return {}
        logits = self.model.compute_logits(picked)  # (N, V)
        requests = [sched.scheduled[i] for i in rows]
        sampling = _sampling_batch(requests, logits.device)
        if masks is not None and masks.rows:
            sampling.token_bitmasks = [(i, masks.rows[r.request_id]) for i, r in enumerate(requests)
                                       if r.request_id in masks.rows]
        result = sample(logits, sampling)
        return _to_tokens(requests, result)

    @torch.inference_mode()
    def all_logits(self, request: ScheduledRequest) -> torch.Tensor:
        """Logits (T, vocab) of every token of one request's chunk."""
        return self.model.compute_logits(self.model(self._prepare([request])))

    def _prepare(self, scheduled: list[ScheduledRequest]) -> ForwardBatch:
        bs = self.block_size
        input_ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        starts = [0]
        context_lens, seq_lens = [], []
        for r in scheduled:
            n = len(r.token_ids)
            input_ids.extend(r.token_ids)
            pos = range(r.start_pos, r.start_pos + n)
            positions.extend(pos)
            slots.extend(r.block_ids[p // bs] * bs + p % bs for p in pos)
            starts.append(starts[-1] + n)
            context_lens.append(r.start_pos)
            seq_lens.append(r.start_pos + n)
        width = max(len(r.block_ids) for r in scheduled)
        tables = torch.tensor([r.block_ids + [0] * (width - len(r.block_ids)) for r in scheduled],
                              dtype=torch.long)  # (B, width), padded with 0
        dev = self.device
        attn = AttentionMetadata(
            block_size=bs,
            slot_mapping=torch.tensor(slots, dtype=torch.long, device=dev),
            block_tables=tables.to(dev),
            query_start_loc=starts,
            context_lens=context_lens,
            seq_lens=seq_lens,
            seq_lens_tensor=torch.tensor(seq_lens, dtype=torch.long, device=dev),
            all_decode=len(input_ids) == len(scheduled),
            sliding_window=self.sliding_window,
        )
        return ForwardBatch(
            input_ids=torch.tensor(input_ids, dtype=torch.long, device=dev),
            positions=torch.tensor(positions, dtype=torch.long, device=dev),
            attn=attn,
            kv_caches=self.kv_caches,
            backend=self.backend,
        )


def _step_generator(seed: int | None, step: int) -> torch.Generator:
    # Randomness from (seed, step) alone: same draws whatever the batch or preemptions.
    g = torch.Generator()
    g.manual_seed(((seed or 0) * 1_000_003 + step) & 0x7FFF_FFFF_FFFF_FFFF)
    return g


def _sampling_batch(requests: list[ScheduledRequest], device) -> SamplingBatch:
    params = [r.sampling_params for r in requests]

    def col(values, dtype=torch.float32):
        return torch.tensor(values, dtype=dtype, device=device)

    def optional(name, neutral):
        values = [getattr(p, name) for p in params]
        return None if all(v == neutral for v in values) else col(values)

    want = [p.logprobs for p in params if p.logprobs is not None]
    suppress = [
        sorted(r.eos_token_ids | set(r.sampling_params.stop_token_ids))
        if len(r.generated_token_ids) < r.sampling_params.min_tokens
        else []
        for r in requests
    ]
    return SamplingBatch(
        temperature=col([p.temperature for p in params]),
        top_k=col([p.top_k for p in params], torch.long),
        top_p=col([p.top_p for p in params]),
        min_p=col([p.min_p for p in params]),
        generators=[
            _step_generator(r.seed if r.seed is not None else r.sampling_params.seed, len(r.generated_token_ids))
            if r.sampling_params.temperature != 0 else None
            for r in requests
        ],
        repetition_penalty=optional("repetition_penalty", 1.0),
        presence_penalty=optional("presence_penalty", 0.0),
        frequency_penalty=optional("frequency_penalty", 0.0),
        prompt_token_ids=[r.prompt_token_ids for r in requests],
        output_token_ids=[r.generated_token_ids for r in requests],
        suppress_token_ids=suppress if any(suppress) else None,
        max_logprobs=max(want) if want else None,
        sampled_rows=[i for i, p in enumerate(params) if p.temperature != 0],
        any_min_p=any(p.min_p > 0 for p in params if p.temperature != 0),
        any_top_k_or_p=any(p.top_k > 0 or p.top_p < 1 for p in params if p.temperature != 0),
    )


def _host_results(out) -> tuple[list, list, list, list | None, list | None]:
    """ids, logprobs, ranks, top ids and top logprobs of `out` as lists, read back as one float64
    tensor (ids, ranks and float32 logprobs are exact in float64)."""
    n = out.token_ids.shape[0]
    parts = [out.token_ids.double(), out.logprobs.double(), out.ranks.double()]
    k = 0 if out.top_ids is None else out.top_ids.shape[1]
    if k:
        parts += [out.top_ids.double().reshape(-1), out.top_logprobs.double().reshape(-1)]
    flat = torch.cat(parts).tolist()
    ids = [int(v) for v in flat[:n]]
    logprobs, ranks = flat[n:2 * n], [int(v) for v in flat[2 * n:3 * n]]
    if not k:
        return ids, logprobs, ranks, None, None
    top = flat[3 * n:3 * n + n * k]
    top_lp = flat[3 * n + n * k:]
    return (ids, logprobs, ranks, [[int(v) for v in top[i * k:(i + 1) * k]] for i in range(n)],
            [top_lp[i * k:(i + 1) * k] for i in range(n)])


def _to_tokens(requests: list[ScheduledRequest], out) -> dict[str, SampledToken]:
    # The results cross to the host in one transfer, whatever the number of rows.
    if out.logprobs is None:
        ids = out.token_ids.tolist()
    else:
        ids, logprobs, ranks, top_ids, top_logprobs = _host_results(out)
    result = {}
    for i, r in enumerate(requests):
        tok = SampledToken(ids[i])
        k = r.sampling_params.logprobs
        if k is not None and out.logprobs is not None:
            tok.logprob = float(logprobs[i])
            tok.rank = int(ranks[i])
            if k > 0:
                tok.top = list(zip(top_ids[i][:k], top_logprobs[i][:k]))
        result[r.request_id] = tok
    return result
