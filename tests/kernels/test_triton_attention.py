"""The Triton attention kernels, interpreted on the CPU (TRITON_INTERPRET=1), against the torch
backend over the same paged cache: decode and variable-length prefill with context from cached
blocks, GQA, sliding windows, head sizes 64 and 128, several block sizes, float32 and float16
caches. Both backends first write the step's K/V into their own copy of the cache."""
from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("triton", reason="Triton is not installed (it comes with the test extra)")

from corral.layers.attention.metadata import AttentionMetadata  # noqa: E402
from corral.layers.attention.torch_paged import TorchPagedAttention  # noqa: E402

if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
    pytest.skip("no GPU, and TRITON_INTERPRET is not 1 (tests/conftest.py sets it unless it was set)",
                allow_module_level=True)

from corral.layers.attention.triton_backend import TritonPagedAttention  # noqa: E402

# Interpreted on the CPU; compiled on a GPU when there is one (benchmarks/gpu_check.sh).
DEVICE = torch.device("cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda")


def make_step(hq: int, hk: int, d: int, bs: int, ctx: list[int], lens: list[int], dtype: torch.dtype,
              window: int | None, seed: int, softcap: float | None = None):
    """A random cache holding each sequence's first ctx[i] positions in shuffled blocks, and the
    step's q/k/v for positions ctx[i] .. lens[i]-1 with its metadata."""
    gen = torch.Generator().manual_seed(seed)
    blocks_per_seq = [-(-n // bs) for n in lens]
    num_blocks = sum(blocks_per_seq) + 3
    order = torch.randperm(num_blocks, generator=gen)
    width = max(blocks_per_seq)
    tables = torch.zeros(len(lens), width, dtype=torch.long)
    taken = 0
    for i, n in enumerate(blocks_per_seq):
        tables[i, :n] = order[taken:taken + n]
        taken += n
    kv = torch.randn(2, num_blocks, bs, hk, d, generator=gen).to(dtype)
    t = sum(s - c for c, s in zip(ctx, lens))
    q, k, v = (torch.randn(t, h, d, generator=gen) for h in (hq, hk, hk))
    slots, starts = [], [0]
    for i, (c, s) in enumerate(zip(ctx, lens)):
        slots += [int(tables[i, p // bs]) * bs + p % bs for p in range(c, s)]
        starts.append(starts[-1] + s - c)
    meta = AttentionMetadata(block_size=bs, slot_mapping=torch.tensor(slots), block_tables=tables,
                             query_start_loc=starts, context_lens=list(ctx), seq_lens=list(lens),
                             seq_lens_tensor=torch.tensor(lens), all_decode=t == len(lens), sliding_window=window,
                             logit_softcap=softcap)
    return q, k, v, kv, meta


def compare(hq, hk, d, bs, ctx, lens, dtype, window, seed, softcap=None):
    q, k, v, kv, meta = make_step(hq, hk, d, bs, ctx, lens, dtype, window, seed, softcap)
    q, k, v, kv = (t.to(DEVICE) for t in (q, k, v, kv))
    for name in ("slot_mapping", "block_tables", "seq_lens_tensor"):
        setattr(meta, name, getattr(meta, name).to(DEVICE))
    kv_ref = kv.clone()
    ref = TorchPagedAttention(use_kernel=False).forward(q, k, v, kv_ref, meta, d**-0.5)
    fresh = AttentionMetadata(**{f: getattr(meta, f) for f in ("block_size", "slot_mapping", "block_tables",
                                                                "query_start_loc", "context_lens", "seq_lens",
                                                                "seq_lens_tensor", "all_decode", "sliding_window",
                                                                "logit_softcap")})
    out = TritonPagedAttention().forward(q, k, v, kv, fresh, d**-0.5)
    assert torch.equal(kv, kv_ref)  # the same K/V written to the same slots
    assert out.dtype == q.dtype and out.shape == q.shape
    tol = 2e-5 if dtype == torch.float32 else 2e-3  # float16: q is rounded to the cache's type for the dots
    assert (out - ref).abs().max().item() <= tol * max(1.0, ref.abs().max().item())


DECODE_CASES = [  # hq, hk, d, bs, lens, window
    (8, 2, 64, 16, [5, 40, 17], None),
    (4, 4, 128, 32, [70, 1], None),  # no GQA, one sequence of a single position
    (14, 2, 64, 8, [33, 9], 12),  # group of 7 (padded rows), window, small blocks
    (16, 2, 128, 64, [130], 100),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["f32", "f16"])
@pytest.mark.parametrize("hq,hk,d,bs,lens,window", DECODE_CASES)
def test_decode_matches_torch(hq, hk, d, bs, lens, window, dtype):
    compare(hq, hk, d, bs, [n - 1 for n in lens], lens, dtype, window, seed=len(lens) + d)


PREFILL_CASES = [  # hq, hk, d, bs, ctx, lens, window
    (8, 2, 64, 16, [0, 20, 9], [37, 30, 10]),  # a whole prompt, a chunk over cached blocks, a decode
    (4, 1, 128, 32, [0], [45]),  # one prompt longer than a query tile
    (8, 4, 64, 8, [16, 0], [50, 3]),
]


@pytest.mark.parametrize("window", [None, 12])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["f32", "f16"])
@pytest.mark.parametrize("hq,hk,d,bs,ctx,lens", PREFILL_CASES)
def test_prefill_matches_torch(hq, hk, d, bs, ctx, lens, dtype, window):
    compare(hq, hk, d, bs, ctx, lens, dtype, window, seed=sum(lens))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["f32", "f16"])
@pytest.mark.parametrize("all_decode", [True, False], ids=["decode", "prefill"])
def test_soft_capped_scores_match_torch(all_decode, dtype):
    """Gemma 2's soft-capped scores, cap 0.5 so most scores bend, with a window."""
    lens = [33, 9]
    ctx = [n - 1 for n in lens] if all_decode else [0, 4]
    compare(14, 2, 64, 8, ctx, lens, dtype, 12, seed=5, softcap=0.5)
