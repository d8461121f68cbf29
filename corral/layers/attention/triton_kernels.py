"""Triton kernels for attention over the paged KV cache.

Both kernels read K/V where they lie: key position p of a sequence is slot
block_tables[seq, p // block_size] * block_size + p % block_size of the cache, which is
(num_blocks, block_size, Hk, D) for K and for V. Each streams the key positions in tiles of
BLOCK_N through an online softmax in float32 (scores, running max and sum, accumulator), so any
cache block size works and no gathered copy of K/V is made.

- `paged_decode`: one query token per sequence; a program takes one sequence and one KV head,
  the GROUP query heads that read it being the rows of its tiles (GQA without re-reading K/V).
- `paged_prefill`: variable-length chunks; a program takes BLOCK_M query tokens of one
  sequence and one query head, which attend causally to the sequence's cached positions (the
  context from earlier steps, and this chunk's own K/V, written before the call).

Scores are soft-capped, cap * tanh(score / cap) = cap * (2 sigmoid(2 score / cap) - 1), when a cap
is given (Gemma 2). Masked scores are -inf and the running max starts at a finite -1e30, so a tile with no allowed
position adds nothing; every query attends at least to itself, so each row's sum is positive.
Dot products run in the cache's dtype (float16/bfloat16 on tensor cores), or in IEEE float32
when the cache is float32, accumulating in float32.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _attend(
    q, q_pos, table_ptr, k_cache_ptr, v_cache_ptr, kv_head, lo, hi, scale, softcap, window,
    stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh, block_size,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_WINDOW: tl.constexpr, IEEE: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
):
    """Rows of q (BLOCK_M, BLOCK_D) at absolute positions q_pos (BLOCK_M,) over key positions
    lo .. hi-1 of one sequence (block table at table_ptr): the normalized output (BLOCK_M, BLOCK_D)
    in float32."""
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    m_i = tl.full([BLOCK_M], -1e30, tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start in range(lo, hi, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_mask = offs_n < hi
        blocks = tl.load(table_ptr + offs_n // block_size, mask=n_mask, other=0).to(tl.int64)
        in_block = (offs_n % block_size).to(tl.int64)
        kv_mask = n_mask[:, None] & d_mask[None, :]
        k = tl.load(k_cache_ptr + blocks[:, None] * stride_kb + in_block[:, None] * stride_ks
                    + kv_head * stride_kh + offs_d[None, :], mask=kv_mask, other=0.0)  # (N, D)
        if IEEE:
            s = tl.dot(q, tl.trans(k), input_precision="ieee")  # (M, N)
        else:
            s = tl.dot(q, tl.trans(k))
        s = s * scale
        if HAS_SOFTCAP:
            s = softcap * (2.0 * tl.sigmoid(2.0 * s / softcap) - 1.0)
        allowed = (offs_n[None, :] <= q_pos[:, None]) & n_mask[None, :]
        if HAS_WINDOW:
            allowed = allowed & (offs_n[None, :] > q_pos[:, None] - window)
        s = tl.where(allowed, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(v_cache_ptr + blocks[:, None] * stride_vb + in_block[:, None] * stride_vs
                    + kv_head * stride_vh + offs_d[None, :], mask=kv_mask, other=0.0)  # (N, D)
        if IEEE:
            pv = tl.dot(p, v, input_precision="ieee")
        else:
            pv = tl.dot(p.to(v.dtype), v)
        acc = acc * alpha[:, None] + pv
        m_i = m_new
    return acc / tl.maximum(l_i, 1e-30)[:, None]


@triton.jit
def _decode_kernel(
    out_ptr, q_ptr, k_cache_ptr, v_cache_ptr, tables_ptr, seq_lens_ptr, scale, softcap, window,
    stride_qt, stride_qh, stride_ot, stride_oh, stride_kb, stride_ks, stride_kh,
    stride_vb, stride_vs, stride_vh, stride_bt, block_size,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr, HAS_WINDOW: tl.constexpr, IEEE: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
):
    seq = tl.program_id(0).to(tl.int64)
    kv_head = tl.program_id(1)
    offs_g = tl.arange(0, BLOCK_G)
    offs_d = tl.arange(0, BLOCK_D)
    heads = kv_head * GROUP + offs_g
    mask = (offs_g < GROUP)[:, None] & (offs_d < HEAD_DIM)[None, :]
    q = tl.load(q_ptr + seq * stride_qt + heads[:, None] * stride_qh + offs_d[None, :], mask=mask, other=0.0)
    seq_len = tl.load(seq_lens_ptr + seq).to(tl.int32)
    lo = 0
    if HAS_WINDOW:
        lo = tl.maximum(seq_len - window, 0)
        lo = (lo // BLOCK_N) * BLOCK_N
    q_pos = tl.zeros([BLOCK_G], tl.int32) + (seq_len - 1)
    out = _attend(q.to(k_cache_ptr.dtype.element_ty), q_pos, tables_ptr + seq * stride_bt, k_cache_ptr, v_cache_ptr,
                  kv_head, lo, seq_len, scale, softcap, window, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs,
                  stride_vh, block_size, HEAD_DIM, BLOCK_G, BLOCK_D, BLOCK_N, HAS_WINDOW, IEEE, HAS_SOFTCAP)
    tl.store(out_ptr + seq * stride_ot + heads[:, None] * stride_oh + offs_d[None, :],
             out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _prefill_kernel(
    out_ptr, q_ptr, k_cache_ptr, v_cache_ptr, tables_ptr, query_start_ptr, context_lens_ptr, scale, softcap, window,
    stride_qt, stride_qh, stride_ot, stride_oh, stride_kb, stride_ks, stride_kh,
    stride_vb, stride_vs, stride_vh, stride_bt, block_size,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr, HAS_WINDOW: tl.constexpr, IEEE: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
):
    seq = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    m_start = tl.program_id(2) * BLOCK_M
    q_start = tl.load(query_start_ptr + seq)
    num_queries = (tl.load(query_start_ptr + seq + 1) - q_start).to(tl.int32)
    if m_start < num_queries:  # the grid covers the longest chunk; shorter ones skip the rest
        ctx = tl.load(context_lens_ptr + seq).to(tl.int32)
        offs_m = m_start + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        rows = (q_start + offs_m).to(tl.int64)
        mask = (offs_m < num_queries)[:, None] & (offs_d < HEAD_DIM)[None, :]
        q = tl.load(q_ptr + rows[:, None] * stride_qt + head * stride_qh + offs_d[None, :], mask=mask, other=0.0)
        q_pos = ctx + offs_m
        hi = tl.minimum(ctx + num_queries, ctx + m_start + BLOCK_M)  # past the tile's last query: unseen
        lo = 0
        if HAS_WINDOW:
            lo = tl.maximum(ctx + m_start - window + 1, 0)
            lo = (lo // BLOCK_N) * BLOCK_N
        out = _attend(q.to(k_cache_ptr.dtype.element_ty), q_pos, tables_ptr + seq * stride_bt, k_cache_ptr,
                      v_cache_ptr, head // GROUP, lo, hi, scale, softcap, window, stride_kb, stride_ks, stride_kh,
                      stride_vb, stride_vs, stride_vh, block_size, HEAD_DIM, BLOCK_M, BLOCK_D, BLOCK_N,
                      HAS_WINDOW, IEEE, HAS_SOFTCAP)
        tl.store(out_ptr + rows[:, None] * stride_ot + head * stride_oh + offs_d[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=mask)


def _common(q: torch.Tensor, kv_cache: torch.Tensor, block_tables: torch.Tensor, window: int | None,
            softcap: float | None):
    k_cache, v_cache = kv_cache[0], kv_cache[1]  # (num_blocks, block_size, Hk, D)
    hq, d = q.shape[1], q.shape[2]
    hk = k_cache.shape[2]
    if q.stride(2) != 1 or k_cache.stride(3) != 1 or v_cache.stride(3) != 1 or block_tables.stride(1) != 1:
        raise ValueError("q, the KV cache and the block tables need a contiguous last dimension")
    if hq % hk:
        raise ValueError(f"{hq} query heads do not share {hk} KV heads evenly")
    strides = (q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
               v_cache.stride(0), v_cache.stride(1), v_cache.stride(2), block_tables.stride(0), k_cache.shape[1])
    consts = dict(GROUP=hq // hk, HEAD_DIM=d, BLOCK_D=triton.next_power_of_2(d),
                  HAS_WINDOW=bool(window), IEEE=kv_cache.dtype == torch.float32, HAS_SOFTCAP=bool(softcap))
    return k_cache, v_cache, hk, strides, consts


def paged_decode(q: torch.Tensor, kv_cache: torch.Tensor, block_tables: torch.Tensor, seq_lens: torch.Tensor,
                 scale: float, window: int | None = None, out: torch.Tensor | None = None,
                 block_n: int = 32, softcap: float | None = None) -> torch.Tensor:
    """q (B, Hq, D), one query per sequence at its last position seq_lens[b]-1, whose K/V are
    already in the cache -> out (B, Hq, D) in q's dtype."""
    out = torch.empty_like(q) if out is None else out
    k_cache, v_cache, hk, strides, consts = _common(q, kv_cache, block_tables, window, softcap)
    sq, sh, *rest = strides
    block_g = max(16, triton.next_power_of_2(consts["GROUP"]))  # tl.dot needs 16 rows
    _decode_kernel[(q.shape[0], hk)](
        out, q, k_cache, v_cache, block_tables, seq_lens, scale, float(softcap or 1.0), int(window or 0),
        sq, sh, out.stride(0), out.stride(1), *rest, BLOCK_G=block_g, BLOCK_N=block_n, **consts,
    )
    return out


def paged_prefill(q: torch.Tensor, kv_cache: torch.Tensor, block_tables: torch.Tensor,
                  query_start_loc: torch.Tensor, context_lens: torch.Tensor, max_query_len: int, scale: float,
                  window: int | None = None, out: torch.Tensor | None = None,
                  block_m: int = 32, block_n: int = 32, softcap: float | None = None) -> torch.Tensor:
    """q (T, Hq, D), sequence i owning rows query_start_loc[i]:query_start_loc[i+1] at positions
    context_lens[i] + j, whose K/V are already in the cache -> out (T, Hq, D) in q's dtype."""
    out = torch.empty_like(q) if out is None else out
    k_cache, v_cache, hk, strides, consts = _common(q, kv_cache, block_tables, window, softcap)
    sq, sh, *rest = strides
    grid = (query_start_loc.shape[0] - 1, q.shape[1], triton.cdiv(max_query_len, block_m))
    _prefill_kernel[grid](
        out, q, k_cache, v_cache, block_tables, query_start_loc, context_lens, scale, float(softcap or 1.0),
        int(window or 0),
        sq, sh, out.stride(0), out.stride(1), *rest, BLOCK_M=block_m, BLOCK_N=block_n, **consts,
    )
    return out
