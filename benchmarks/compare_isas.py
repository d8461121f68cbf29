"""One-token quantized matmuls from DRAM, two kernel sets side by side: for each type and shape,
the median time of calls rotating over copies of the weight larger than the cache, the sets taking
turns over 5 rounds (a slow phase of a shared machine then hits both), as GB/s of weight read.

    python benchmarks/compare_isas.py Q8_0,Q4_0 1536x576,6912x1152 [avx2,avx512vnni]
    HOT=1 python benchmarks/compare_isas.py Q6_K 768x2048      # one copy: from the caches
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np
import torch

from corral import kernels
from corral.kernels.random_blocks import random_blocks
from corral.loader.quantized import QuantizedWeight


def main() -> None:
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    hot = os.environ.get("HOT") == "1"
    rng = np.random.default_rng(0)
    types = sys.argv[1].split(",")
    shapes = [tuple(map(int, s.split("x"))) for s in sys.argv[2].split(",")]
    isas = sys.argv[3].split(",") if len(sys.argv) > 3 else ["avx2", "avx512vnni"]
    for type_name in types:
        for n, k in shapes:
            qw = QuantizedWeight(type_name, (n, k), random_blocks(type_name, n, k, rng))
            size = qw.data.nbytes
            copies = [kernels.pack(QuantizedWeight(type_name, (n, k), qw.data.copy()))
                      for _ in range(1 if hot else max(2, (400 << 20) // size))]
            x, out = torch.randn(1, k), torch.empty(1, n)
            medians: dict[str, list[float]] = {isa: [] for isa in isas}
            for _ in range(5):
                for isa in isas:
                    times = []
                    for c in copies * max(1, 60 // len(copies)):
                        t0 = time.perf_counter()
                        kernels.qmatmul(x, c, out, isa=isa)
                        times.append(time.perf_counter() - t0)
                    medians[isa].append(statistics.median(times))
            print(type_name, f"{n}x{k}", "  ".join(f"{isa}: {size / statistics.median(v) / 1e9:5.1f} GB/s"
                                                   for isa, v in medians.items()), flush=True)


if __name__ == "__main__":
    main()
