"""qmatmul_each: several weights each against its own activations (a mixture's experts) in one
call, each result bitwise what the weight gives alone."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from corral import kernels
from corral.kernels.random_blocks import random_blocks
from corral.loader.quantized import QuantizedWeight

pytestmark = pytest.mark.skipif(not kernels.is_available(), reason="quantized kernels not built")


def _weight(type_name: str, n: int, k: int, seed: int) -> QuantizedWeight:
    return QuantizedWeight(type_name, (n, k), random_blocks(type_name, n, k, np.random.default_rng(seed)))


def _k(type_name: str) -> int:
    return 512 if type_name.endswith("_K") else 32 * 9


@pytest.mark.parametrize("type_name", ["Q4_0", "Q8_0", "Q4_K", "Q6_K", "IQ4_NL"])
def test_each_weight_on_its_own_input_is_what_it_gives_alone(type_name: str) -> None:
    # qmatmul_each: a mixture's experts each on its own activations, one parallel region
    k = _k(type_name)
    packed = [kernels.pack(_weight(type_name, n, k, seed=n), repack=True) for n in (64, 96, 33)]
    for t in (1, 2, 5):
        xs = [torch.randn(t, k, generator=torch.Generator().manual_seed(t + i)) for i in range(3)]
        for x, w, y in zip(xs, packed, kernels.qmatmul_each(xs, packed)):
            assert torch.equal(y, kernels.qmatmul(x, w))
