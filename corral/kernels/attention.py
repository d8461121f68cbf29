"""Decode attention over a paged KV cache, reading keys and values where they lie in the blocks.

One query token per sequence (a decode step): out[b, h] = softmax(scale * q[b, h] . K_b^T) V_b over
the positions 0 .. seq_lens[b]-1 of sequence b (the last `sliding_window` of them when set), query
head h reading KV head h // (Hq // Hk), each score soft-capped to cap * tanh(score / cap) first when
`softcap` is set (Gemma 2). The C extension (csrc/attention.c) streams each sequence's
blocks through an online softmax in float32; `reference_paged_decode_attention` is the float64
ground truth tests use.
"""
from __future__ import annotations

import torch

from corral.kernels.qmatmul import isa_level

try:
    from corral.kernels import _qmatmul as _ext
except ImportError:  # not built: callers gather K/V and use torch
    _ext = None

MAX_GROUP = 256  # query heads per KV head the kernel takes (ATT_MAX_GROUP in csrc/attention.h)
_BEST = _ext.best_level() if _ext is not None else 0


def is_available() -> bool:
    """True when the compiled kernel can be used in this process."""
    return _ext is not None


def paged_decode_attention(
    q: torch.Tensor,
    kv_cache: torch.Tensor,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
    sliding_window: int | None = None,
    *,
    softcap: float | None = None,
    new_kv: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    out: torch.Tensor | None = None,
    num_threads: int | None = None,
    isa: str | None = None,
) -> torch.Tensor:
    """(B, Hq, D) float32 attention of one query token per sequence over its cached positions.

    q: (B, Hq, D) float32. kv_cache: (2, num_blocks, block_size, Hk, D) float32 or float16, keys then
    values (float16 is read as float32; the arithmetic is float32 either way).
    block_tables: (B, max_blocks) int64, block ids of each sequence in order (entries past a
    sequence's last block are not read). seq_lens: (B,) int64 or int32, each in 1 ..
    max_blocks * block_size. new_kv: (keys, values, slots), the step's (B, Hk, D) float32 keys and
    values and the (B,) int64 cache slots (block * block_size + offset) they go to, written (as the
    cache's dtype, rounded to nearest) before attending, which saves the caller two index_copy_.
    softcap: scores become softcap * tanh(score / softcap) before the softmax (Gemma 2).
    All on the CPU and contiguous. Raises ValueError otherwise, or when a block id in use or a slot
    is outside the cache (before anything is written). `num_threads` defaults to torch.get_num_threads();
    `isa` picks a kernel set from `isa_levels()` (default: the best).
    """
    if _ext is None:
        raise RuntimeError("corral's CPU kernels are not built; gather the keys and values and use torch")
    _check_float("q", q, 3)
    _check_float("kv_cache", kv_cache, 5, (torch.float32, torch.float16))
    b, hq, d = q.shape
    _, num_blocks, block_size, hk, d_kv = kv_cache.shape
    if kv_cache.shape[0] != 2 or d_kv != d:
        raise ValueError(f"kv_cache must be (2, num_blocks, block_size, Hk, {d}), got {tuple(kv_cache.shape)}")
    if hk == 0 or hq % hk != 0 or hq // hk > MAX_GROUP:
        raise ValueError(f"{hq} query heads cannot share {hk} KV heads (a multiple, at most {MAX_GROUP} per KV head)")
    if block_tables.dim() != 2 or block_tables.shape[0] != b or block_tables.dtype != torch.int64:
        raise ValueError(
            f"block_tables must be ({b}, max_blocks) int64, got {block_tables.dtype} {tuple(block_tables.shape)}"
        )
    if seq_lens.shape != (b,) or seq_lens.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"seq_lens must be ({b},) int64 or int32, got {seq_lens.dtype} {tuple(seq_lens.shape)}")
    if not (block_tables.is_cpu and seq_lens.is_cpu and block_tables.is_contiguous() and seq_lens.is_contiguous()):
        raise ValueError("block_tables and seq_lens must be contiguous CPU tensors")
    if sliding_window is not None and sliding_window < 1:
        raise ValueError(f"sliding_window must be None or at least 1, got {sliding_window}")
    if softcap is not None and not 0 < softcap < float("inf"):
        raise ValueError(f"softcap must be None or a positive finite number, got {softcap}")
    if out is None:
        out = torch.empty_like(q)
    elif out.shape != q.shape or out.dtype != torch.float32 or not out.is_cpu or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous CPU float32 {tuple(q.shape)} tensor")
    if b == 0:
        return out
    new_addrs: tuple[int, ...] = ()
    if new_kv is not None:
        k_new, v_new, slots = new_kv
        _check_float("new keys", k_new, 3)
        _check_float("new values", v_new, 3)
        if k_new.shape != (b, hk, d) or v_new.shape != (b, hk, d):
            raise ValueError(f"new keys and values must be ({b}, {hk}, {d}), got {tuple(k_new.shape)} and "
                             f"{tuple(v_new.shape)}")
        if slots.shape != (b,) or slots.dtype != torch.int64 or not slots.is_cpu or not slots.is_contiguous():
            raise ValueError(f"slots must be a contiguous CPU ({b},) int64 tensor, got {slots.dtype} {tuple(slots.shape)}")
        new_addrs = (k_new.data_ptr(), v_new.data_ptr(), slots.data_ptr())
    if seq_lens.dtype == torch.int32:
        seq_lens = seq_lens.to(torch.int64)
    level = _BEST if isa is None else isa_level(isa)
    threads = num_threads if num_threads is not None else torch.get_num_threads()
    _ext.paged_decode_attention(
        level, q.data_ptr(), kv_cache.data_ptr(), block_tables.data_ptr(), seq_lens.data_ptr(), out.data_ptr(),
        b, hq, hk, d, num_blocks, block_size, block_tables.shape[1], sliding_window or 0, float(scale), threads,
        kv_cache.dtype == torch.float16,
        # the trailing arguments only when used (addresses 0: no new rows)
        *(((*(new_addrs or (0, 0, 0)), float(softcap)) if softcap else new_addrs)),
    )
    return out


def _check_float(name: str, t: torch.Tensor, dims: int, dtypes: tuple = (torch.float32,)) -> None:
    if t.dim() != dims or t.dtype not in dtypes or not t.is_cpu or not t.is_contiguous():
        kinds = " or ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise ValueError(
            f"{name} must be a contiguous {dims}-D CPU {kinds} tensor, got {t.dtype} {tuple(t.shape)} on {t.device}"
            + ("" if t.is_contiguous() else " (not contiguous)")
        )


def reference_paged_decode_attention(
    q: torch.Tensor,
    kv_cache: torch.Tensor,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
    sliding_window: int | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """float64 (B, Hq, D): each sequence's keys and values gathered block by block, scores
    soft-capped when `softcap` is set, exact softmax."""
    b, hq, d = q.shape
    hk, block_size = kv_cache.shape[3], kv_cache.shape[2]
    out = torch.empty(b, hq, d, dtype=torch.float64)
    for i in range(b):
        n = int(seq_lens[i])
        blocks = block_tables[i, : -(-n // block_size)]
        keys = kv_cache[0][blocks].flatten(0, 1)[:n].to(torch.float64)  # (n, Hk, D)
        values = kv_cache[1][blocks].flatten(0, 1)[:n].to(torch.float64)
        first = max(0, n - sliding_window) if sliding_window else 0
        keys, values = keys[first:], values[first:]
        heads = q[i].to(torch.float64).view(hk, hq // hk, d)  # (Hk, G, D)
        scores = torch.einsum("kgd,nkd->kgn", heads, keys) * scale  # (Hk, G, n)
        if softcap:
            scores = torch.tanh(scores / softcap) * softcap
        probs = torch.softmax(scores, dim=-1)
        out[i] = torch.einsum("kgn,nkd->kgd", probs, values).reshape(hq, d)
    return out
