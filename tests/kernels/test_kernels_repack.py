"""Q4_0 repacked in groups of 16 rows (`pack(..., repack=True)`): the layout, the results of every
kernel set against float64, and results that do not depend on which tokens share a call."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from corral import kernels
from corral.kernels import ops
from corral.kernels.random_blocks import random_blocks
from corral.loader.quantized import QuantizedWeight
from tests.kernels.kernel_bounds import dense_weight, int8_activation_bound

pytestmark = pytest.mark.skipif(not kernels.is_available(), reason="quantized kernels not built")

ISAS = kernels.isa_levels() if kernels.is_available() else ()
GROUPS = bool(ISAS) and ISAS[-1] == "avx512vnni"  # where pack() repacks
needs_groups = pytest.mark.skipif(not GROUPS, reason="Q4_0 is repacked only where AVX-512 VNNI runs")


def _weight(n: int, k: int, seed: int = 0, type_name: str = "Q4_0") -> QuantizedWeight:
    return QuantizedWeight(type_name, (n, k), random_blocks(type_name, n, k, np.random.default_rng(seed)))


def _check(x: torch.Tensor, qw: QuantizedWeight, y: torch.Tensor) -> None:
    w = dense_weight(qw)
    ref = x.to(torch.float64) @ w.T
    bound = int8_activation_bound(x, w)
    err = (y.to(torch.float64) - ref).abs()
    assert (err / bound).max().item() <= 1.0
    assert err.mean().item() < 0.25 * bound.mean().item()


def _expected_layout(qw: QuantizedWeight) -> np.ndarray:
    """The layout csrc/qtypes.h documents for QT_Q4_0_X16, built value by value."""
    n, k = qw.shape
    nb = k // 32
    blocks = qw.data.reshape(n, nb, 18)
    scales = blocks[:, :, :2]
    qs = blocks[:, :, 2:]
    values = np.concatenate([qs & 15, qs >> 4], axis=2)  # (n, nb, 32): value j of each block, unsigned
    out = np.empty((n // 16, nb, 288), dtype=np.uint8)
    for g in range(n // 16):
        rows = slice(16 * g, 16 * g + 16)
        out[g, :, :32] = scales[rows].transpose(1, 0, 2).reshape(nb, 32)
        for c in range(4):
            for i in range(4):
                lo = values[rows, :, 8 * c + i]  # (16, nb)
                hi = values[rows, :, 8 * c + 4 + i]
                # an int and an index array around a slice: numpy puts the indexed axes first, (16, nb)
                out[g, :, 32 + 64 * c + 4 * np.arange(16) + i] = lo | (hi << 4)
    return out.reshape(n, nb * 18)


@needs_groups
def test_layout_is_the_documented_one() -> None:
    qw = _weight(48, 32 * 5, seed=1)
    w = kernels.pack(qw, repack=True)
    assert w.layout == "x16" and w.shape == (48, 160) and w.nbytes == kernels.pack(qw).nbytes
    np.testing.assert_array_equal(w.data, _expected_layout(qw))


@pytest.mark.parametrize(
    "qw",
    [_weight(24, 64), _weight(32, 256, type_name="Q4_K"), _weight(32, 64, type_name="Q8_0")],
    ids=["rows-not-a-multiple-of-16", "Q4_K", "Q8_0"],
)
def test_other_weights_keep_their_blocks(qw: QuantizedWeight) -> None:
    w = kernels.pack(qw, repack=True)
    assert w.layout == "gguf" and w.data is qw.data


@needs_groups
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("t,k", [(1, 224), (3, 224), (8, 224), (9, 224), (16, 224), (50, 224), (130, 224),
                                 (130, 16384)])
def test_matches_float64_reference(t: int, k: int, isa: str) -> None:
    # The x16 path takes 2 MB of int8 activations per token chunk, at least 128 tokens: 130 tokens
    # of a 16384-wide input span two chunks. Other kernel sets unpack the groups into tiles.
    qw = _weight(80, k, seed=t)
    x = torch.randn(t, k, generator=torch.Generator().manual_seed(t))
    y = kernels.qmatmul(x, kernels.pack(qw, repack=True), isa=isa)
    assert y.shape == (t, 80)
    _check(x, qw, y)


@needs_groups
@pytest.mark.parametrize("t", [33, 200])
def test_many_tokens_in_large_units(t: int) -> None:
    # Past 32 tokens a unit holds up to 256 KB of rows (at least 8 units a weight): 2048 rows of
    # K = 896 go in 8 units of 256 rows, the last token group short.
    qw = _weight(2048, 896, seed=t)
    x = torch.randn(t, 896, generator=torch.Generator().manual_seed(t))
    y = kernels.qmatmul(x, kernels.pack(qw, repack=True), num_threads=2)
    _check(x, qw, y)
    one = kernels.qmatmul(x[:8], kernels.pack(qw, repack=True), num_threads=1)
    assert torch.equal(one, y[:8])


@needs_groups
@pytest.mark.parametrize("k", [896, 16384])
def test_each_token_computes_alike_in_any_batch(k: int) -> None:
    # A sequence's logits must not depend on what else is decoding: the same token gives bitwise the
    # same row alone, among 7 others, among 40 or among 200 (several threads; with k = 16384,
    # several token chunks).
    qw = _weight(4864 // 8, k, seed=2)  # 608 rows: several row chunks
    w = kernels.pack(qw, repack=True)
    x = torch.randn(200, k, generator=torch.Generator().manual_seed(2))
    full = kernels.qmatmul(x, w, num_threads=2)
    for t in (1, 8, 40):
        part = kernels.qmatmul(x[:t], w, num_threads=1)
        assert torch.equal(part, full[:t])
    alone = kernels.qmatmul(x[150:151], w)
    assert torch.equal(alone[0], full[150])


@needs_groups
@pytest.mark.parametrize("t", [4, 16, 200])
def test_many_equals_one_by_one(t: int) -> None:
    # q/k/v-like weights sharing x; one of them not repacked (24 rows) takes its own path.
    shapes = [(64, 128), (32, 128), (24, 128)]
    weights = [kernels.pack(_weight(n, k, seed=i), repack=True) for i, (n, k) in enumerate(shapes)]
    assert [w.layout for w in weights] == ["x16", "x16", "gguf"]
    x = torch.randn(t, 128)
    outs = kernels.qmatmul_many(x, weights)
    for w, o in zip(weights, outs):
        assert torch.equal(o, kernels.qmatmul(x, w))


@needs_groups
def test_row_lookup_needs_the_file_layout() -> None:
    w = kernels.pack(_weight(16, 64), repack=True)
    with pytest.raises(ValueError, match="GGUF layout"):
        ops.dequantize_rows(w, torch.tensor([0, 3]))
