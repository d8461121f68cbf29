"""Batched token sampling with per-request parameters, on the logits' device.

Each request samples from its own torch.Generator, so a seeded request draws the same
tokens whatever else shares the batch. Order of logit processing: penalties, then (for
non-greedy rows) temperature, min-p, top-k, top-p, as vLLM does.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from corral.kernels import ops


@dataclass
class SamplingBatch:
    """Per-row settings for N rows of logits (one row per request that samples this step)."""

    temperature: torch.Tensor  # (N,) float; 0 = greedy
    top_k: torch.Tensor  # (N,) int64; 0 = off
    top_p: torch.Tensor  # (N,) float; 1 = off
    min_p: torch.Tensor  # (N,) float; 0 = off
    generators: list[torch.Generator | None]  # None for greedy rows, which draw nothing
    repetition_penalty: torch.Tensor | None = None  # (N,), None when all rows are 1
    presence_penalty: torch.Tensor | None = None  # (N,)
    frequency_penalty: torch.Tensor | None = None  # (N,)
    prompt_token_ids: list[list[int]] | None = None  # for the repetition penalty
    output_token_ids: list[list[int]] | None = None
    suppress_token_ids: list[list[int]] | None = None  # e.g. EOS while below min_tokens
    max_logprobs: int | None = None  # None: no logprobs wanted by any row
    sampled_rows: list[int] | None = None  # rows with temperature > 0; None: read them off `temperature`
    # (row, (ceil(V/32),) int32 bitmask) for rows a grammar constrains: bit t%32 of word t//32 allows t
    token_bitmasks: list[tuple[int, torch.Tensor]] | None = None
    # Whether any sampled row uses min-p / top-k or top-p, known on the host so that no step reads
    # a device tensor back to decide (None: read them off the tensors)
    any_min_p: bool | None = None
    any_top_k_or_p: bool | None = None


@dataclass
class SamplerOutput:
    token_ids: torch.Tensor  # (N,) int64
    logprobs: torch.Tensor | None = None  # (N,) log p of the chosen token (raw model distribution)
    ranks: torch.Tensor | None = None  # (N,) 1 = most likely
    top_ids: torch.Tensor | None = None  # (N, k)
    top_logprobs: torch.Tensor | None = None  # (N, k)


def sample(logits: torch.Tensor, batch: SamplingBatch) -> SamplerOutput:
    """logits: (N, V) float32 -> one token per row."""
    if batch.max_logprobs is not None:
        raw = torch.log_softmax(logits, dim=-1)
    logits = _apply_penalties(logits, batch)
    if batch.suppress_token_ids:
        rows = [row for row, ids in enumerate(batch.suppress_token_ids) for _ in ids]
        cols = [i for ids in batch.suppress_token_ids for i in ids]
        if rows:  # one indexed write for every row, whatever the device
            logits[torch.tensor(rows, device=logits.device), torch.tensor(cols, device=logits.device)] = float("-inf")
    if batch.token_bitmasks:
        _apply_bitmasks(logits, batch.token_bitmasks)
    tokens = _argmax(logits)
    sampled_rows = batch.sampled_rows
    if sampled_rows is None:
        sampled_rows = (batch.temperature != 0).nonzero().flatten().tolist()
    if sampled_rows:
        rows = logits[sampled_rows] / batch.temperature[sampled_rows, None]
        probs = _filter(rows, batch.top_k[sampled_rows], batch.top_p[sampled_rows], batch.min_p[sampled_rows],
                        batch.any_min_p, batch.any_top_k_or_p)
        # Exponential race: argmax(p / E), E ~ Exp(1), draws from p with one generator call per row.
        # Drawn where the generators live (the host), so a seed gives the same tokens on any device;
        # the rows' noise crosses to the device in one copy.
        noise = torch.empty(probs.shape)
        for j, row in enumerate(sampled_rows):
            noise[j].exponential_(generator=batch.generators[row])
        if probs.device.type != "cpu":
            noise = noise.pin_memory().to(probs.device, non_blocking=True)
        tokens[torch.tensor(sampled_rows, device=tokens.device)] = (probs / noise).argmax(dim=-1)
    out = SamplerOutput(token_ids=tokens)
    if batch.max_logprobs is not None:
        chosen = raw.gather(1, tokens[:, None]).squeeze(1)
        out.logprobs = chosen
        out.ranks = (raw > chosen[:, None]).sum(dim=-1) + 1
        if batch.max_logprobs > 0:
            out.top_logprobs, out.top_ids = raw.topk(batch.max_logprobs, dim=-1)
    return out


def _apply_bitmasks(logits: torch.Tensor, masks: list[tuple[int, torch.Tensor]]) -> None:
    """Set the logits of the tokens each row's grammar forbids to -inf, in place.

    Each mask byte looks up its 8 additive values (0 or -inf) in a 256-row table and the row is
    added to the logits: about 0.07 ms for a 150k vocabulary, where a boolean masked_fill takes
    0.6 ms on one thread and tens of ms when its threads fight for a busy machine's cores."""
    import numpy as np

    vocab = logits.shape[1]
    if logits.device.type != "cpu" or not logits.is_contiguous():
        # The packed words cross to the device (V/8 bytes a row), where they are unpacked.
        rows = torch.tensor([row for row, _ in masks], device=logits.device)
        words = torch.stack([w for _, w in masks]).to(logits.device, non_blocking=True)
        shifts = torch.arange(32, device=logits.device, dtype=torch.int32)
        allowed = ((words[:, :, None] >> shifts) & 1).reshape(len(masks), -1)[:, :vocab].bool()
        logits[rows] = logits[rows].masked_fill(~allowed, float("-inf"))
        return
    table = _byte_table()
    for row, words in masks:
        additive = np.take(table, words.numpy().view(np.uint8), axis=0).reshape(-1)[:vocab]  # (V,)
        target = logits[row].numpy()
        np.add(target, additive, out=target)


@lru_cache(maxsize=1)
def _byte_table():
    """(256, 8) float32: for each byte value, 0 where bit j is set (allowed), -inf where not."""
    import numpy as np

    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little")
    return np.where(bits == 1, np.float32(0), np.float32(-np.inf)).astype(np.float32)


def _argmax(logits: torch.Tensor) -> torch.Tensor:
    """(N, V) -> (N,) int64, the first maximum of each row: one C pass per row on CPU float32, the
    rows over threads (torch's argmax runs scalar code, ~2 ms for 16 rows of a 150k vocabulary)."""
    return ops.argmax_rows(logits)


def _apply_penalties(logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
    if batch.repetition_penalty is None and batch.presence_penalty is None and batch.frequency_penalty is None:
        return logits
    n, vocab = logits.shape
    logits = logits.clone()
    dev = logits.device
    counts = torch.zeros(n, vocab, dtype=logits.dtype, device=dev)  # occurrences in the generated tokens
    for row, ids in enumerate(batch.output_token_ids or []):
        if ids:
            ones = torch.ones(len(ids), dtype=logits.dtype, device=dev)
            counts[row].index_add_(0, torch.tensor(ids, device=dev), ones)
    if batch.repetition_penalty is not None:
        seen = counts > 0
        for row, ids in enumerate(batch.prompt_token_ids or []):
            if ids:
                seen[row, ids] = True
        rp = batch.repetition_penalty[:, None]
        penalized = torch.where(logits > 0, logits / rp, logits * rp)
        logits = torch.where(seen, penalized, logits)
    if batch.frequency_penalty is not None:
        logits -= batch.frequency_penalty[:, None] * counts
    if batch.presence_penalty is not None:
        logits -= batch.presence_penalty[:, None] * (counts > 0).to(logits.dtype)
    return logits


def _filter(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor, min_p: torch.Tensor,
            any_min_p: bool | None = None, any_top_k_or_p: bool | None = None) -> torch.Tensor:
    """Temperature-scaled logits (M, V) -> probabilities with min-p, top-k, top-p applied. The
    flags say from the host whether any row filters; None reads them off the tensors (a device sync)."""
    probs = torch.softmax(logits, dim=-1)
    if any_min_p is None:
        any_min_p = bool((min_p > 0).any())
    if any_top_k_or_p is None:
        any_top_k_or_p = bool((top_k > 0).any()) or bool((top_p < 1).any())
    if any_min_p:
        floor = min_p[:, None] * probs.max(dim=-1, keepdim=True).values
        probs = torch.where(probs < floor, torch.zeros_like(probs), probs)
    if any_top_k_or_p:
        vocab = probs.shape[-1]
        kept = None
        if probs.device.type == "cpu":
            # The most likely CANDIDATES tokens (or the largest top-k) by a partial sort: a full
            # sort of a large vocabulary costs milliseconds a row. Exact whenever nothing past
            # them survives: checked on the result, else the full sort below.
            cand = min(vocab, max(CANDIDATES, int(top_k.max())))
            if cand < vocab:
                sorted_probs, order = probs.topk(cand, dim=-1)
                kept = _keep_sorted(sorted_probs, top_k, top_p, probs.sum(dim=-1, keepdim=True))
                if bool(kept[:, -1].any()):  # a nucleus may reach past the candidates
                    kept = None
        if kept is None:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            kept = _keep_sorted(sorted_probs, top_k, top_p, None)
        sorted_probs = sorted_probs.masked_fill(~kept, 0)
        probs = torch.zeros_like(probs).scatter_(1, order, sorted_probs)
    return probs / probs.sum(dim=-1, keepdim=True)


CANDIDATES = 256  # tokens a row's top-k / top-p filter looks at before falling back to a full sort


def _keep_sorted(sorted_probs: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor,
                 total: torch.Tensor | None) -> torch.Tensor:
    """(M, C) bool: which of each row's C most likely tokens (probabilities in descending order, the
    first C of the vocabulary's V) top-k and then top-p keep. `total` (M, 1): the mass of all V
    tokens, for rows without top-k when C < V (None: C is the whole vocabulary)."""
    m, c = sorted_probs.shape
    k = torch.where(top_k > 0, top_k.clamp(max=c), torch.full_like(top_k, c))
    keep = torch.arange(c, device=sorted_probs.device)[None, :] < k[:, None]  # (M, C) in sorted order
    # top-p: keep the smallest prefix whose mass reaches p (always the first token), p of the mass
    # that top-k left: the k kept tokens', or every token's without top-k.
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    renorm = sorted_probs.masked_fill(~keep, 0).sum(dim=-1, keepdim=True)
    if total is not None:
        renorm = torch.where(top_k[:, None] > 0, renorm, total)
    keep &= mass_before < top_p[:, None] * renorm
    keep[:, 0] = True
    return keep
