"""Microbenchmark of corral's quantized matmul kernels on real model shapes.

For each weight type and shape (N, K) it times out(T, N) = x(T, K) @ W^T for decode (T=1) and
prefill (T=512), and prints weight GB/s, GFLOP/s, the time ratio to torch's dense float32 matmul
of the same shape, and (decode) the share of the machine's measured memory read bandwidth.
Weights are random valid GGUF blocks: kernels time the same on them as on real weights.

    python benchmarks/bench_kernels.py                       # Qwen2.5-0.5B shapes, all main types
    python benchmarks/bench_kernels.py --types Q4_0 --threads 1 --cold
    python benchmarks/bench_kernels.py --types Q4_0 --tokens 1,16,512 --repack   # as models load them

Times are the best of repeated runs (others may share the CPU; the best is the least disturbed).
`--cold` rotates decode through enough copies of the weight to exceed the last-level cache, so
decode reads come from DRAM as they do in a real model.

`--decode-step` instead times one whole decode step's matmuls of Qwen2.5-0.5B (24 layers of q, k,
v, o, gate, up, down, then the 151936-row output head: 169 calls, each weight its own copy, so reads
come from DRAM), once call by call and once with q/k/v and gate/up each in one `qmatmul_many`;
with `--tokens 16`, 16 sequences decoding together (x has 16 rows).
A K-quant type stands for a llama.cpp mix: matrices whose K is not a multiple of 256 use its
fallback (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), as llama.cpp's quantizer does.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from corral import kernels
from corral.kernels.random_blocks import random_blocks
from corral.loader.quantized import QuantizedWeight

SHAPES = {
    # (N, K) = (out_features, in_features)
    "qwen": [(896, 896), (4864, 896), (896, 4864), (151936, 896)],
    "qwen-mlp": [(4864, 896), (896, 4864)],  # gate/up and down: the bulk of a decode step
    "llama": [(2048, 2048), (512, 2048), (8192, 2048), (2048, 8192), (128256, 2048)],
}
BLOCK = {"Q4_0": 32, "Q4_1": 32, "Q5_0": 32, "Q5_1": 32, "Q8_0": 32,
         "Q2_K": 256, "Q3_K": 256, "Q4_K": 256, "Q5_K": 256, "Q6_K": 256}


def best_time(fn, min_time: float, min_runs: int = 3) -> float:
    """Seconds of the fastest of at least `min_runs` calls spanning at least `min_time`."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def memory_bandwidth(n_bytes: int = 1 << 30) -> tuple[float, float]:
    """(copy GB/s counting read + write, read GB/s of a sum) over an n_bytes buffer."""
    a = torch.ones(n_bytes // 4)
    b = torch.empty_like(a)
    copy = best_time(lambda: b.copy_(a), 0.5)
    read = best_time(lambda: a.sum(), 0.5)
    return 2 * n_bytes / copy / 1e9, n_bytes / read / 1e9


def llc_bytes() -> int:
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index3/size") as f:
            text = f.read().strip()
        return int(text[:-1]) * {"K": 1 << 10, "M": 1 << 20}[text[-1]]
    except (OSError, ValueError, KeyError):
        return 256 << 20


QWEN_LAYERS = 24
QWEN_LAYER = {"q": (896, 896), "k": (128, 896), "v": (128, 896), "o": (896, 896),
              "gate": (4864, 896), "up": (4864, 896), "down": (896, 4864)}
K_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0", "Q2_K": "Q4_0", "Q3_K": "Q4_0"}


def decode_step(type_name: str, threads: int, min_time: float, rng: np.random.Generator, tokens: int = 1,
                repack: bool = False) -> None:
    """Print ms per step and weight GB/s for Qwen2.5-0.5B's decode matmuls, single and grouped,
    with `tokens` sequences decoding together (one token each)."""
    blocks: dict[tuple[int, int, str], np.ndarray] = {}

    def weight(shape: tuple[int, int]) -> kernels.PackedWeight:
        name = type_name if shape[1] % BLOCK[type_name] == 0 else K_FALLBACK[type_name]
        key = (*shape, name)
        if key not in blocks:
            blocks[key] = random_blocks(name, *shape, rng)
        return kernels.pack(QuantizedWeight(name, shape, blocks[key].copy()), repack=repack)

    layers = [{role: weight(shape) for role, shape in QWEN_LAYER.items()} for _ in range(QWEN_LAYERS)]
    head = weight((151936, 896))
    total = sum(w.nbytes for layer in layers for w in layer.values()) + head.nbytes
    x, xd = torch.randn(tokens, 896), torch.randn(tokens, 4864)  # (T, K)

    def one_by_one() -> None:
        for layer in layers:
            for role, w in layer.items():
                kernels.qmatmul(xd if role == "down" else x, w, num_threads=threads)
        kernels.qmatmul(x, head, num_threads=threads)

    def grouped() -> None:
        for layer in layers:
            kernels.qmatmul_many(x, [layer["q"], layer["k"], layer["v"]], num_threads=threads)
            kernels.qmatmul(x, layer["o"], num_threads=threads)
            kernels.qmatmul_many(x, [layer["gate"], layer["up"]], num_threads=threads)
            kernels.qmatmul(xd, layer["down"], num_threads=threads)
        kernels.qmatmul(x, head, num_threads=threads)

    for label, fn in (("169 calls", one_by_one), ("grouped", grouped)):
        s = best_time(fn, min_time)
        print(f"{type_name:5} decode step, T={tokens}, {label:9}: {s * 1e3:7.2f} ms  {total / s / 1e9:5.1f} GB/s "
              f"({total / 1e6:.0f} MB of weights)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", default="Q4_0,Q5_0,Q8_0,Q4_K,Q5_K,Q6_K")
    parser.add_argument("--shapes", choices=sorted(SHAPES), default="qwen")
    parser.add_argument("--tokens", default=None, help="comma-separated T values (default 1,512; 1 with --decode-step)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per measurement, at least")
    parser.add_argument("--cold", action="store_true", help="decode from DRAM: rotate weight copies")
    parser.add_argument("--no-dense", action="store_true", help="skip the float32 torch baseline")
    parser.add_argument("--isa", default=None, help="kernel set (default: the best this CPU runs)")
    parser.add_argument("--decode-step", action="store_true", help="time a whole Qwen2.5-0.5B decode step")
    parser.add_argument("--repack", action="store_true",
                        help="pack weights as the model loader does (Q4_0 in groups of 16 rows on AVX-512)")
    args = parser.parse_args()
    if not kernels.is_available():
        raise SystemExit("corral's kernels are not built (pip install -e . builds them)")
    torch.set_num_threads(args.threads)
    tokens = [int(t) for t in (args.tokens or ("1" if args.decode_step else "1,512")).split(",")]
    copy_bw, read_bw = memory_bandwidth()
    print(f"kernels: {args.isa or kernels.isa_levels()[-1]}, threads: {args.threads}, "
          f"memory: copy {copy_bw:.1f} GB/s, read {read_bw:.1f} GB/s")
    rng = np.random.default_rng(0)
    if args.decode_step:
        for type_name in args.types.split(","):
            for t in tokens:
                decode_step(type_name, args.threads, args.min_time, rng, t, args.repack)
        return
    dense_ms: dict[tuple[int, int, int], float] = {}
    header = f"{'type':5} {'N x K':>12} {'T':>4} {'ms':>9} {'GB/s':>7} {'GFLOP/s':>8} {'vs f32':>7} {'of read BW':>10}"
    print(header)
    print("-" * len(header))
    for shape in SHAPES[args.shapes]:
        n, k = shape
        for t in tokens:
            if not args.no_dense:
                w32 = torch.randn(n, k)
                x = torch.randn(t, k)
                dense_s = best_time(lambda: torch.nn.functional.linear(x, w32), args.min_time)
                dense_ms[(n, k, t)] = dense_s
                print(f"{'f32':5} {n:>6}x{k:<5} {t:>4} {dense_s * 1e3:9.3f} {n * k * 4 / dense_s / 1e9:7.1f} "
                      f"{2 * n * k * t / dense_s / 1e9:8.1f} {'1.00':>7} {n * k * 4 / dense_s / 1e9 / read_bw:10.0%}")
                del w32
        for type_name in args.types.split(","):
            if k % BLOCK[type_name]:
                print(f"{type_name:5} {n:>6}x{k:<5}    - (K is not a multiple of {BLOCK[type_name]})")
                continue
            qw = QuantizedWeight(type_name, shape, random_blocks(type_name, n, k, rng))
            pw = kernels.pack(qw, repack=args.repack)
            for t in tokens:
                x = torch.randn(t, k)
                out = torch.empty(t, n)
                if args.cold and t == 1:
                    copies = [pw] + [
                        kernels.pack(QuantizedWeight(type_name, shape, qw.data.copy()), repack=args.repack)
                        for _ in range(2 * llc_bytes() // pw.nbytes + 1)
                    ]
                    it = iter(range(1 << 62))
                    fn = lambda: kernels.qmatmul(x, copies[next(it) % len(copies)], out, isa=args.isa)  # noqa: E731
                else:
                    fn = lambda: kernels.qmatmul(x, pw, out, isa=args.isa)  # noqa: E731
                s = best_time(fn, args.min_time)
                ratio = dense_ms.get((n, k, t))
                gbs = pw.nbytes / s / 1e9
                print(f"{type_name:5} {n:>6}x{k:<5} {t:>4} {s * 1e3:9.3f} {gbs:7.1f} {2 * n * k * t / s / 1e9:8.1f} "
                      f"{(f'{ratio / s:.2f}' if ratio else '-'):>7} {(f'{gbs / read_bw:.0%}' if t == 1 else ''):>10}")
                del fn


if __name__ == "__main__":
    main()
