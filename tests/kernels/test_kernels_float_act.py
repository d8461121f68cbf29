"""Quantized weights against float32 activations: a float matmul of the exact block values, for
every type and ISA, each (row, token) result the same whatever else is in the call."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from corral import kernels
from corral.kernels.random_blocks import random_blocks
from corral.loader.quantized import QuantizedWeight
from tests.kernels.kernel_bounds import dense_weight

pytestmark = pytest.mark.skipif(not kernels.is_available(), reason="quantized kernels not built")

TYPES = sorted(kernels.SUPPORTED_TYPES)
ISAS = kernels.isa_levels() if kernels.is_available() else ()


def _weight(type_name: str, n: int, k: int, seed: int) -> QuantizedWeight:
    return QuantizedWeight(type_name, (n, k), random_blocks(type_name, n, k, np.random.default_rng(seed)))


def _k(type_name: str) -> int:
    return 512 if type_name.endswith("_K") or type_name == "IQ4_XS" else 32 * 9  # 256-value blocks, or 32


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("type_name", TYPES)
def test_float_activations_match_a_float64_matmul(type_name: str, isa: str) -> None:
    k, n = _k(type_name), 45  # 45 rows: partial tiles of 4
    qw = _weight(type_name, n, k, seed=1)
    w = dense_weight(qw)
    packed = kernels.pack(qw, float_activations=True)
    for t in (1, 5, 8):
        x = torch.randn(t, k, generator=torch.Generator().manual_seed(t))
        ref = x.to(torch.float64) @ w.T
        y = kernels.qmatmul(x, packed, isa=isa)
        # float32 sums of k products: a few ulps of sum |x| |w|, nothing like the int8 kernels' 1/254
        bound = 1e-6 * (x.abs().to(torch.float64) @ w.abs().T) + 1e-30
        assert ((y.to(torch.float64) - ref).abs() / bound).max().item() <= 4.0


@pytest.mark.parametrize("type_name", ["Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q6_K"])
def test_a_token_gets_the_same_result_alone_or_in_a_batch(type_name: str) -> None:
    k = _k(type_name)
    qw = _weight(type_name, 70, k, seed=2)
    packed = kernels.pack(qw, float_activations=True)
    x = torch.randn(11, k, generator=torch.Generator().manual_seed(2))
    together = kernels.qmatmul(x, packed)
    for t in range(11):
        assert torch.equal(kernels.qmatmul(x[t:t + 1], packed, num_threads=1)[0], together[t])


def test_many_weights_mixing_float_and_int8_activations() -> None:
    k = 256
    ws = [_weight("Q4_1", 40, k, 3), _weight("Q8_0", 24, k, 4), _weight("Q4_0", 32, k, 5)]
    packed = [kernels.pack(ws[0], float_activations=True), kernels.pack(ws[1]),
              kernels.pack(ws[2], float_activations=True)]
    x = torch.randn(3, k, generator=torch.Generator().manual_seed(5))
    outs = kernels.qmatmul_many(x, packed)
    for p, y in zip(packed, outs):
        assert torch.equal(y, kernels.qmatmul(x, p))


def test_float_activations_are_never_repacked() -> None:
    qw = _weight("Q4_0", 32, 256, 6)
    packed = kernels.pack(qw, repack=True, float_activations=True)
    assert packed.layout == "gguf" and packed.float_activations



def test_rows_shared_out_over_threads_give_the_same_results() -> None:
    # Weights above the size that runs threaded, of unequal sizes (units of equal bytes span them).
    # More threads than cores: threads the OS delays leave their units to the others, and every
    # row must come out as one thread alone computes it.
    k = 576
    ws = [_weight("Q4_1", 1000, k, 7), _weight("Q4_1", 190, k, 8), _weight("Q8_0", 333, k, 9)]
    packed = [kernels.pack(w, float_activations=True) for w in ws]
    x = torch.randn(1, k, generator=torch.Generator().manual_seed(7))
    alone = [kernels.qmatmul(x, p, num_threads=1) for p in packed]
    for threads in (2, 3, 7):
        for _ in range(20):
            outs = kernels.qmatmul_many(x, packed, num_threads=threads)
            for y, ref in zip(outs, alone):
                assert torch.equal(y, ref)
