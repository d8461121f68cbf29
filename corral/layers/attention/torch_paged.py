"""Paged attention in plain torch (any device, mixed prefill and decode). On the CPU with the C
kernel built, decode queries, and the queries of prompts and chunks it suits, go to the kernel,
which reads K/V where they lie in the blocks; long prompts take torch's SDPA."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from corral.kernels import attention as kernel
from corral.layers.attention.backend import AttentionBackend
from corral.layers.attention.metadata import AttentionMetadata


PREFILL_KERNEL_MAX_LEN = 2048  # see TorchPagedAttention._kernel_sequences
PREFILL_KERNEL_MAX_QUERIES = 16


class TorchPagedAttention(AttentionBackend):
    """`use_kernel=False` keeps decode on the gathered torch path and prompts on SDPA even where the
    kernel could run."""

    def __init__(self, use_kernel: bool = True):
        self.use_kernel = use_kernel and kernel.is_available()

    def forward(self, q, k, v, kv_cache, meta: AttentionMetadata, scale: float) -> torch.Tensor:
        if meta.all_decode and self._kernel_fits(q, kv_cache):
            # One query token per sequence (q: (B, Hq, D)); the kernel writes the new K/V itself.
            new_kv = (k.to(torch.float32).contiguous(), v.to(torch.float32).contiguous(), meta.slot_mapping)
            return self._kernel(q, kv_cache, meta.block_tables, meta.seq_lens_tensor, meta, scale, new_kv)
        num_heads_kv, head_dim = k.shape[1], k.shape[2]
        k_cache = kv_cache[0].view(-1, num_heads_kv, head_dim)  # (num_blocks * block_size, Hk, D)
        v_cache = kv_cache[1].view(-1, num_heads_kv, head_dim)
        k_cache.index_copy_(0, meta.slot_mapping, k.to(k_cache.dtype))
        v_cache.index_copy_(0, meta.slot_mapping, v.to(v_cache.dtype))
        if meta.all_decode:
            return self._decode_gathered(q, kv_cache, meta, scale)
        # A mixed batch: the query tokens of sequences the kernel suits are decode queries of their own.
        by_kernel = self._kernel_sequences(q, kv_cache, meta)
        if not by_kernel:
            return self._varlen(q, k, v, kv_cache, meta, scale)
        rows, tables, lens = token_rows(meta, by_kernel)
        if rows is None:  # every sequence
            return self._kernel(q, kv_cache, tables, lens, meta, scale)
        out = torch.empty_like(q)
        out[rows] = self._kernel(q[rows], kv_cache, tables, lens, meta, scale)
        taken = set(by_kernel)
        return self._varlen(q, k, v, kv_cache, meta, scale, [i for i in range(meta.num_seqs) if i not in taken], out)

    @staticmethod
    def _kernel(q, kv_cache, tables, lens, meta: AttentionMetadata, scale: float, new_kv=None) -> torch.Tensor:
        """q (n, Hq, D): query j attends positions 0 .. lens[j]-1 of the sequence whose blocks are
        tables[j]."""
        out = kernel.paged_decode_attention(q.to(torch.float32).contiguous(), kv_cache, tables.contiguous(),
                                            lens.contiguous(), scale, meta.sliding_window or None,
                                            softcap=meta.logit_softcap or None, new_kv=new_kv)
        return out.to(q.dtype)

    def _kernel_sequences(self, q, kv_cache, meta: AttentionMetadata) -> list[int]:
        """The sequences of a mixed batch whose queries go through the decode kernel: it reads a
        sequence's K/V once per query, SDPA's tiles share them across queries. Per layer of
        Qwen2.5-0.5B's shape the kernel took 3.4-3.9 ms against SDPA's 5.2-7.8 for eight 128-token
        prompts, about the same for one 1024-token prompt and at 2048 positions, and 219 against
        164 for a 4096-token prompt: so sequences of up to PREFILL_KERNEL_MAX_LEN positions, and
        any sequence's few queries (a decode, a short chunk)."""
        if not self._kernel_fits(q, kv_cache):
            return []
        starts = meta.query_start_loc
        return [i for i, n in enumerate(meta.seq_lens)
                if n <= PREFILL_KERNEL_MAX_LEN or starts[i + 1] - starts[i] <= PREFILL_KERNEL_MAX_QUERIES]

    def _kernel_fits(self, q, kv_cache) -> bool:
        return (
            self.use_kernel
            and kv_cache.is_cpu
            and kv_cache.dtype in (torch.float32, torch.float16)
            and kv_cache.is_contiguous()
            and q.shape[1] // kv_cache.shape[3] <= kernel.MAX_GROUP
        )

    def _decode_gathered(self, q, kv_cache, meta: AttentionMetadata, scale: float) -> torch.Tensor:
        # Two batched matmuls over each sequence's slots, gathered into new (B, L, Hk, D) tensors.
        num_seqs, num_heads, head_dim = q.shape
        num_heads_kv = kv_cache.shape[3]
        group = num_heads // num_heads_kv
        slots, mask = decode_slots(meta)
        # (B, L, Hk, D), in q's dtype: a float16 cache holds the values, the arithmetic stays float32
        keys = kv_cache[0].view(-1, num_heads_kv, head_dim)[slots].to(q.dtype)
        values = kv_cache[1].view(-1, num_heads_kv, head_dim)[slots].to(q.dtype)
        qg = q.view(num_seqs, num_heads_kv, group, head_dim)  # (B, Hk, G, D)
        scores = torch.matmul(qg, keys.permute(0, 2, 3, 1)) * scale  # (B, Hk, G, L)
        if meta.logit_softcap:
            scores = torch.tanh(scores / meta.logit_softcap) * meta.logit_softcap
        if mask is not None:
            scores.masked_fill_(~mask[:, None, None, :], float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, values.transpose(1, 2))  # (B, Hk, G, D)
        return out.reshape(num_seqs, num_heads, head_dim)

    def _varlen(self, q, k, v, kv_cache, meta: AttentionMetadata, scale: float, seqs=None, out=None) -> torch.Tensor:
        """SDPA for each sequence in `seqs` (default: all), its rows written into `out`."""
        bs = meta.block_size
        out = torch.empty_like(q) if out is None else out
        for i in range(meta.num_seqs) if seqs is None else seqs:
            start, end = meta.query_start_loc[i], meta.query_start_loc[i + 1]
            ctx, seq_len = meta.context_lens[i], meta.seq_lens[i]
            if ctx == 0:  # all of the sequence is in this step: its K/V as the cache holds them, no gather
                keys = _as_cached(k[start:end], kv_cache.dtype, q.dtype)  # (S, Hk, D)
                values = _as_cached(v[start:end], kv_cache.dtype, q.dtype)
            else:
                blocks = meta.block_tables[i, : -(-seq_len // bs)]
                keys = kv_cache[0][blocks].flatten(0, 1)[:seq_len].to(q.dtype)  # (S, Hk, D)
                values = kv_cache[1][blocks].flatten(0, 1)[:seq_len].to(q.dtype)
            # 4-D inputs (a batch of one) take torch's fused CPU attention kernel; 3-D ones fall
            # back to the unfused math path, about 3x slower on a 512-token prompt.
            qs = q[start:end].transpose(0, 1)[None]  # (1, Hq, n, D)
            ks, vs = keys.transpose(0, 1)[None], values.transpose(0, 1)[None]  # (1, Hk, S, D)
            if meta.logit_softcap:  # SDPA cannot soft-cap: the scores in full
                o = _softcapped(qs, ks, vs, _causal_mask(ctx, seq_len, meta.sliding_window, q.device), scale, meta.logit_softcap)
            elif ctx == 0 and not meta.sliding_window:  # the whole sequence: plain causal
                o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale, enable_gqa=True)
            else:
                mask = _causal_mask(ctx, seq_len, meta.sliding_window, q.device)
                o = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=scale, enable_gqa=True)
            o = o[0]  # (Hq, n, D)
            out[start:end] = o.transpose(0, 1)
        return out


def _causal_mask(ctx: int, seq_len: int, window: int | None, device: torch.device | None = None) -> torch.Tensor:
    """(n, S) bool: query at absolute position ctx + i attends key j when j <= ctx + i, and
    j > ctx + i - window with a window."""
    q_pos = torch.arange(ctx, seq_len, device=device)[:, None]  # (n, 1) absolute positions of the queries
    k_pos = torch.arange(seq_len, device=device)[None, :]  # (1, S)
    mask = k_pos <= q_pos  # (n, S)
    if window:
        mask &= k_pos > q_pos - window
    return mask


def _softcapped(q, k, v, mask, scale: float, cap: float) -> torch.Tensor:
    """(1, Hq, n, D) attention of q (1, Hq, n, D) over k, v (1, Hk, S, D) with scores soft-capped,
    cap * tanh(score / cap), before the (n, S) mask and the softmax (Gemma 2)."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # (1, Hq, S, D)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale  # (1, Hq, n, S)
    scores = torch.tanh(scores / cap) * cap
    scores.masked_fill_(~mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def token_rows(meta: AttentionMetadata, seqs: list[int]) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """The query tokens of sequences `seqs` of a mixed batch as decode queries of their own: their
    rows in the batch (None when `seqs` is every sequence), (n, blocks) block tables (as wide as
    those sequences need) and (n,) attended lengths: token j of sequence i attends positions
    0 .. context_lens[i] + j. Built by the first layer that asks and kept in `meta` for the step's
    other layers, which ask for the same sequences."""
    if meta.kernel_rows is None:
        starts = meta.query_start_loc
        width = -(-max(meta.seq_lens[i] for i in seqs) // meta.block_size)
        counts = torch.tensor([starts[i + 1] - starts[i] for i in seqs])
        seq_of = torch.repeat_interleave(torch.tensor(seqs), counts).to(meta.block_tables.device)
        tables = meta.block_tables[:, :width].index_select(0, seq_of).contiguous()
        lens = torch.cat([torch.arange(meta.context_lens[i] + 1, meta.seq_lens[i] + 1) for i in seqs])
        rows = None if len(seqs) == meta.num_seqs else torch.cat([torch.arange(starts[i], starts[i + 1]) for i in seqs])
        meta.kernel_rows = (rows, tables, lens)
    return meta.kernel_rows


def _as_cached(x: torch.Tensor, cache_dtype: torch.dtype, dtype: torch.dtype) -> torch.Tensor:
    """x rounded as a cache of `cache_dtype` stores it, in `dtype`: the values a gather would read."""
    return x.to(dtype) if x.dtype == cache_dtype else x.to(cache_dtype).to(dtype)


def decode_slots(meta: AttentionMetadata) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, L) cache slots of positions 0..L-1 of each sequence of a decode batch, L the longest,
    and a (B, L) mask of the attended ones (None when all are). Built by the first layer that asks
    and kept in `meta` for the step's other layers."""
    if meta.decode_slots is None:
        bs, longest, window = meta.block_size, meta.max_seq_len, meta.sliding_window
        tables = meta.block_tables
        num_blocks = -(-longest // bs)
        offsets = torch.arange(bs, device=tables.device)
        meta.decode_slots = (tables[:, :num_blocks, None] * bs + offsets).flatten(1)[:, :longest]
        # Known from the Python lengths, so no device sync: every position is attended when all
        # sequences are equally long and none is past the window.
        if min(meta.seq_lens) == longest and not (window and longest > window):
            meta.decode_mask = None
        else:
            pos = torch.arange(longest, device=tables.device)[None, :]  # (1, L)
            lens = meta.seq_lens_tensor[:, None]  # (B, 1)
            mask = pos < lens
            if window:
                mask &= pos >= lens - window
            meta.decode_mask = mask
    return meta.decode_slots, meta.decode_mask
