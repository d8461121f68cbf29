"""IQ4_NL and IQ4_XS matmul kernels against float64 dequantize-then-matmul (gguf-py decodes the
weights), on blocks as a real encoder writes them, at several shapes, one token and more, on every
kernel set this CPU runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures.iquants import quantize_iq4_nl, quantize_iq4_xs

from corral import kernels
from corral.kernels.qmatmul import row_dot_max_tokens
from corral.loader.quantized import QuantizedWeight
from tests.kernels.kernel_bounds import dense_weight, int8_activation_bound

pytestmark = pytest.mark.skipif(not kernels.is_available(), reason="quantized kernels not built")

ENCODERS = {"IQ4_NL": quantize_iq4_nl, "IQ4_XS": quantize_iq4_xs}
ISAS = kernels.isa_levels() if kernels.is_available() else ()
SIMD_ISAS = [isa for isa in ISAS if isa != "scalar"]


def _weight(type_name: str, n: int, k: int, seed: int) -> QuantizedWeight:
    dense = np.random.default_rng(seed).standard_normal((n, k)).astype(np.float32) * 0.05
    return QuantizedWeight(type_name, (n, k), ENCODERS[type_name](dense))


def _check(x: torch.Tensor, qw: QuantizedWeight, y: torch.Tensor) -> None:
    w = dense_weight(qw)
    err = (y.to(torch.float64) - x.to(torch.float64) @ w.T).abs()
    bound = int8_activation_bound(x, w)
    worst = (err / bound).max().item()
    assert worst <= 1.0, f"{qw.type_name}: error reaches {worst:.2f} x the int8 activation bound"
    assert err.mean().item() < 0.25 * bound.mean().item()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("n,k", [(7, 256), (40, 768), (96, 1536)])
@pytest.mark.parametrize("type_name", sorted(ENCODERS))
def test_matches_dequantize_then_matmul(type_name: str, n: int, k: int, isa: str) -> None:
    qw = _weight(type_name, n, k, seed=n)
    pw = kernels.pack(qw)
    for t in (1, 2, 9, 33):  # row dots, multi-token row dots, streamed tiles, unpack-once tiles
        x = torch.randn(t, k, generator=torch.Generator().manual_seed(t))
        y = kernels.qmatmul(x, pw, isa=isa)
        assert y.shape == (t, n)
        _check(x, qw, y)


@pytest.mark.parametrize("isa", SIMD_ISAS)
@pytest.mark.parametrize("type_name", sorted(ENCODERS))
def test_one_token_takes_row_dots_and_batches_agree_with_single_tokens(type_name: str, isa: str) -> None:
    max_t = row_dot_max_tokens(type_name, isa)
    assert max_t >= 1
    qw = _weight(type_name, 33, 512, seed=5)
    pw = kernels.pack(qw)
    x = torch.randn(max_t, 512, generator=torch.Generator().manual_seed(5))
    together = kernels.qmatmul(x, pw, isa=isa)
    alone = torch.cat([kernels.qmatmul(x[i : i + 1], pw, isa=isa) for i in range(max_t)])
    assert torch.equal(together, alone)


@pytest.mark.parametrize("t", [1, 20])
@pytest.mark.parametrize("type_name", sorted(ENCODERS))
def test_threads_give_identical_results(type_name: str, t: int) -> None:
    pw = kernels.pack(_weight(type_name, 203, 512, seed=7))
    x = torch.randn(t, 512)
    one = kernels.qmatmul(x, pw, num_threads=1)
    for threads in (2, 3):
        assert torch.equal(kernels.qmatmul(x, pw, num_threads=threads), one)
