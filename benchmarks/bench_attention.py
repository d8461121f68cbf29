"""Decode attention over the paged KV cache: the gathered torch path against the C kernel.

Times the attention of one decode step of Qwen2.5-0.5B's shape (24 layers, 14 query heads, 2 KV
heads, head dim 64, blocks of 16 tokens) for B sequences of about --context tokens each, through
the engine's own backend (`TorchPagedAttention.forward`, the step's new K/V written first): once
gathering each sequence's K/V into new (B, L, Hk, D) tensors for two batched matmuls after two
index_copy_ writes (the path without the kernel, including the per-step slot table it builds), once
with the kernel writing the new rows and reading the blocks in place.

    OMP_NUM_THREADS=1 python benchmarks/bench_attention.py                  # B=1 and 16, 1 and 2 threads
    OMP_NUM_THREADS=1 python benchmarks/bench_attention.py --batch 16 --threads 2 --context 500
    python benchmarks/bench_attention.py --batch 16 --threads 2 --kv-dtype float32,float16

Each layer has its own cache tensor with the sequences' blocks scattered through it, as in the
engine, and before each timed step 512 MiB are read (as a real step streams the model's weights
between one layer's attention and the next step's), so K/V come from DRAM; --warm skips that.
Times are the best of repeated steps over --rounds alternating measurements of the two paths (the
CPU may be shared; the best is the least disturbed), printed per step and per layer.
"""
from __future__ import annotations

import argparse
import time

import torch

from corral.kernels import attention as kernel
from corral.layers.attention import AttentionMetadata
from corral.layers.attention.torch_paged import TorchPagedAttention

LAYERS, HQ, HK, D, BLOCK = 24, 14, 2, 64, 16
CACHE_BLOCKS = 1024  # per layer: 16 MiB, as a ~400 MiB KV budget would give
FLUSH_BYTES = 512 << 20  # read before each step, as streaming the model's weights would


def best_time(fn, min_time: float, before=None, min_runs: int = 5) -> float:
    """Seconds of the fastest of at least `min_runs` calls spanning at least `min_time`; `before`,
    if given, runs untimed before each call."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def decode_batch(batch: int, context: int, gen: torch.Generator) -> tuple[list[int], torch.Tensor]:
    """Lengths within +-10% of `context`, and (B, max_blocks) tables of distinct random blocks."""
    lens = [max(1, context + int(d)) for d in torch.randint(-context // 10, context // 10 + 1, (batch,), generator=gen)]
    width = -(-max(lens) // BLOCK)
    if batch * width > CACHE_BLOCKS:
        raise SystemExit(f"{batch} sequences of {max(lens)} tokens need more than the {CACHE_BLOCKS} blocks per layer")
    ids = torch.randperm(CACHE_BLOCKS, generator=gen)[: batch * width]
    return lens, ids.view(batch, width).contiguous()


def metadata(lens: list[int], tables: torch.Tensor) -> AttentionMetadata:
    slots = torch.tensor([int(tables[i, (n - 1) // BLOCK]) * BLOCK + (n - 1) % BLOCK for i, n in enumerate(lens)])
    return AttentionMetadata(
        block_size=BLOCK, slot_mapping=slots, block_tables=tables, query_start_loc=list(range(len(lens) + 1)),
        context_lens=[n - 1 for n in lens], seq_lens=lens, seq_lens_tensor=torch.tensor(lens), all_decode=True,
    )


def step_seconds(backend: TorchPagedAttention, caches, q, lens, tables, min_time: float, flush) -> float:
    scale = D**-0.5
    k_new, v_new = torch.randn(len(lens), HK, D), torch.randn(len(lens), HK, D)

    def step() -> None:
        meta = metadata(lens, tables)  # fresh each step, as the model runner builds it
        for cache in caches:
            backend.forward(q, k_new, v_new, cache, meta, scale)

    return best_time(step, min_time, before=flush)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", default="1,16", help="comma-separated numbers of sequences")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--context", type=int, default=200, help="tokens per sequence, about")
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per measurement, at least")
    parser.add_argument("--warm", action="store_true", help="skip the cache flush before each step")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each path, alternating")
    parser.add_argument("--kv-dtype", default="float32", help="comma-separated cache dtypes (float32, float16)")
    args = parser.parse_args()
    if not kernel.is_available():
        raise SystemExit("corral's kernels are not built (pip install -e . builds them)")
    gen = torch.Generator().manual_seed(0)
    full = [torch.randn(2, CACHE_BLOCKS, BLOCK, HK, D, generator=gen) for _ in range(LAYERS)]
    gathered, in_place = TorchPagedAttention(use_kernel=False), TorchPagedAttention()
    evict = torch.ones(FLUSH_BYTES // 4)
    flush = None if args.warm else evict.sum
    print(f"Qwen2.5-0.5B decode attention, {LAYERS} layers, Hq={HQ} Hk={HK} D={D}, block {BLOCK}, "
          f"context ~{args.context}, kernel ISA {kernel.isa_levels()[-1]}")
    for dtype_name in args.kv_dtype.split(","):
        caches = [c.to(getattr(torch, dtype_name)) for c in full]
        print(f"KV cache {dtype_name}")
        run_batches(args, caches, gathered, in_place, flush, gen)


def run_batches(args, caches, gathered, in_place, flush, gen) -> None:
    for batch in (int(b) for b in args.batch.split(",")):
        lens, tables = decode_batch(batch, args.context, gen)
        q = torch.randn(batch, HQ, D, generator=gen)
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            old = new = float("inf")
            for _ in range(args.rounds):  # alternating, so that a busy spell on the CPU hits both
                old = min(old, step_seconds(gathered, caches, q, lens, tables, args.min_time, flush))
                new = min(new, step_seconds(in_place, caches, q, lens, tables, args.min_time, flush))
            print(f"B={batch:3} threads={threads}: "
                  f"gathered {old * 1e3:7.3f} ms/step ({old / LAYERS * 1e6:6.1f} us/layer)"
                  f"  kernel {new * 1e3:7.3f} ms/step ({new / LAYERS * 1e6:6.1f} us/layer)  {old / new:5.1f}x")


if __name__ == "__main__":
    main()
