"""Several tokens at once (a few sequences decoding together), through multi-token row dots or
streamed tiles: the error bound, each row-dot token's outputs bitwise what that token alone gives,
and results independent of the thread count."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from corral import kernels
from corral.kernels.qmatmul import row_dot_max_tokens
from corral.kernels.random_blocks import random_blocks
from corral.loader.quantized import QuantizedWeight
from tests.kernels.kernel_bounds import dense_weight, int8_activation_bound

pytestmark = pytest.mark.skipif(not kernels.is_available(), reason="quantized kernels not built")

TYPES = ["Q4_0", "Q5_0", "Q8_0", "Q4_K", "Q6_K"]
TOKENS = [2, 5, 8, 16, 17, 31]
ISAS = kernels.isa_levels() if kernels.is_available() else ()


def _weight(type_name: str, n: int, seed: int) -> QuantizedWeight:
    k = 512 if type_name.endswith("_K") else 32 * 9  # an odd block count: a tail block past the pairs
    rng = np.random.default_rng(seed)
    return QuantizedWeight(type_name, (n, k), random_blocks(type_name, n, k, rng))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("t", TOKENS)
@pytest.mark.parametrize("type_name", TYPES)
def test_matches_float64_reference(type_name: str, t: int, isa: str) -> None:
    qw = _weight(type_name, 47, seed=t)  # 11 groups of 4 rows and 3 rows past them
    x = torch.randn(t, qw.shape[1], generator=torch.Generator().manual_seed(t))
    y = kernels.qmatmul(x, kernels.pack(qw), isa=isa)
    w = dense_weight(qw)
    err = (y.to(torch.float64) - x.to(torch.float64) @ w.T).abs()
    worst = (err / int8_activation_bound(x, w)).max().item()
    assert worst <= 1.0, f"{type_name}, T={t}: error reaches {worst:.2f} x the int8 activation bound"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("t", TOKENS)
@pytest.mark.parametrize("type_name", TYPES)
def test_each_row_dot_token_is_its_own_result(type_name: str, t: int, isa: str) -> None:
    """Token groups and row groups change only which registers hold what, not the arithmetic."""
    if t > row_dot_max_tokens(type_name, isa):
        pytest.skip(f"{t} tokens of {type_name} go through tiles at {isa}")
    pw = kernels.pack(_weight(type_name, 47, seed=t))
    x = torch.randn(t, pw.shape[1], generator=torch.Generator().manual_seed(100 + t))
    y = kernels.qmatmul(x, pw, num_threads=1, isa=isa)
    for i in range(t):
        assert torch.equal(y[i : i + 1], kernels.qmatmul(x[i : i + 1], pw, num_threads=1, isa=isa))


@pytest.mark.parametrize("t", TOKENS)
@pytest.mark.parametrize("type_name", TYPES)
def test_threads_give_identical_results(type_name: str, t: int) -> None:
    """Row dots and tiles alike compute each output in one thread in one order."""
    pw = kernels.pack(_weight(type_name, 203, seed=t))
    x = torch.randn(t, pw.shape[1])
    one = kernels.qmatmul(x, pw, num_threads=1)
    for threads in (2, 3, 7):
        assert torch.equal(kernels.qmatmul(x, pw, num_threads=threads), one)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("t", TOKENS)
def test_many_mixed_types_equal_one_at_a_time(t: int, isa: str) -> None:
    """Mixed types whose calls may go different ways (row dots for some, tiles for others)."""
    k = 512
    shapes = [("Q4_0", 70), ("Q8_0", 16), ("Q4_K", 33), ("Q6_K", 5), ("Q5_0", 41), ("Q4_K", 1)]
    pws = [kernels.pack(QuantizedWeight(name, (n, k), random_blocks(name, n, k, np.random.default_rng(i))))
           for i, (name, n) in enumerate(shapes)]
    x = torch.randn(t, k, generator=torch.Generator().manual_seed(t))
    for threads in (1, 2, 3):
        outs = kernels.qmatmul_many(x, pws, num_threads=threads, isa=isa)
        for pw, y in zip(pws, outs):
            assert y.shape == (t, pw.shape[0])
            assert torch.equal(y, kernels.qmatmul(x, pw, num_threads=1, isa=isa))


def test_row_dot_range_covers_multi_token_types() -> None:
    best = kernels.isa_levels()[-1]
    for type_name in TYPES:
        assert row_dot_max_tokens(type_name, "scalar") == 0  # tiles only
        if best == "avx512vnni":
            assert row_dot_max_tokens(type_name, best) >= 4


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("t", [16, 70])
def test_many_tiles_share_activations_across_formats(t: int, isa: str) -> None:
    """All jobs through tiles in one call (streamed at 16 tokens, 64-row blocks at 70): types of
    different group and offset share one quantized x, and a call with more jobs than one region
    takes (9) still gives each job's single-weight result."""
    k = 512
    shapes = [("Q4_0", 70), ("Q8_0", 16), ("Q4_K", 133), ("Q6_K", 5), ("Q5_0", 41), ("Q4_1", 9),
              ("Q4_0", 1), ("Q5_K", 17), ("Q3_K", 8)]
    pws = [kernels.pack(QuantizedWeight(name, (n, k), random_blocks(name, n, k, np.random.default_rng(i))))
           for i, (name, n) in enumerate(shapes)]
    x = torch.randn(t, k, generator=torch.Generator().manual_seed(t))
    for jobs in (pws[:4], pws):
        for threads in (1, 2, 3):
            outs = kernels.qmatmul_many(x, jobs, num_threads=threads, isa=isa)
            for pw, y in zip(jobs, outs):
                assert torch.equal(y, kernels.qmatmul(x, pw, num_threads=1, isa=isa))
