"""The quantized matmul kernels against float64 dequantize-then-matmul, for every type and ISA."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType
from gguf.quants import quantize

from corral import kernels
from corral.kernels.random_blocks import random_blocks
from corral.loader.ggml_types import BLOCK_GEOMETRY
from corral.loader.quantized import QuantizedWeight
from tests.kernels.kernel_bounds import dense_weight, int8_activation_bound

pytestmark = pytest.mark.skipif(not kernels.is_available(), reason="quantized kernels not built")

TYPES = sorted(kernels.SUPPORTED_TYPES)
K_QUANTS = {t for t in TYPES if BLOCK_GEOMETRY[t][0] == 256}  # the K-quants and IQ4_XS: 256-value blocks
ISAS = kernels.isa_levels() if kernels.is_available() else ()


def _weight(type_name: str, n: int, k: int, seed: int = 0) -> QuantizedWeight:
    rng = np.random.default_rng(seed)
    return QuantizedWeight(type_name, (n, k), random_blocks(type_name, n, k, rng))


def _check(x: torch.Tensor, qw: QuantizedWeight, y: torch.Tensor) -> None:
    w = dense_weight(qw)
    ref = x.to(torch.float64) @ w.T
    bound = int8_activation_bound(x, w)
    err = (y.to(torch.float64) - ref).abs()
    worst = (err / bound).max().item()
    assert worst <= 1.0, f"{qw.type_name}: error reaches {worst:.2f} x the int8 activation bound"
    # Rounding errors are not all worst-case: the typical error is far below the bound.
    assert err.mean().item() < 0.25 * bound.mean().item()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("t", [1, 3, 17, 64])
@pytest.mark.parametrize("type_name", TYPES)
def test_matches_float64_reference(type_name: str, t: int, isa: str) -> None:
    k = 512 if type_name in K_QUANTS else 96 + 32 * 5  # 8 blocks of 32; odd block counts below
    n = 45  # neither a multiple of 8 nor of 16: partial tiles
    qw = _weight(type_name, n, k, seed=t)
    x = torch.randn(t, k, generator=torch.Generator().manual_seed(t))
    y = kernels.qmatmul(x, kernels.pack(qw), isa=isa)
    assert y.shape == (t, n) and y.dtype == torch.float32
    _check(x, qw, y)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("type_name", ["Q4_0", "Q5_0", "Q8_0", "Q4_K", "Q6_K"])
def test_row_blocks_split_into_every_tile_height(type_name: str, isa: str) -> None:
    # 50 tokens take the unpack-once path: a block of 64 rows, then 31 = 16 + 8 + 4 + 2 + 1 rows,
    # so every tile height a kernel set has runs, over a partial last tile of tokens.
    k = 512 if type_name in K_QUANTS else 32 * 9
    qw = _weight(type_name, 95, k, seed=3)
    x = torch.randn(50, k, generator=torch.Generator().manual_seed(3))
    _check(x, qw, kernels.qmatmul(x, kernels.pack(qw), isa=isa))


@pytest.mark.parametrize("t", [1, 2, 5])
@pytest.mark.parametrize("type_name", sorted(kernels.SUPPORTED_TYPES - K_QUANTS))
def test_odd_block_count(type_name: str, t: int) -> None:
    qw = _weight(type_name, 19, 32 * 7)
    x = torch.randn(t, 32 * 7)
    _check(x, qw, kernels.qmatmul(x, kernels.pack(qw)))


@pytest.mark.parametrize("type_name", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_weights_from_the_gguf_quantizer(type_name: str) -> None:
    """Blocks as real files have them (gguf-py's quantizer) rather than random bytes."""
    rng = np.random.default_rng(1)
    dense = rng.standard_normal((33, 256)).astype(np.float32) * 0.05
    raw = quantize(dense, GGMLQuantizationType[type_name])
    qw = QuantizedWeight(type_name, (33, 256), raw)
    for t in (1, 8):
        x = torch.randn(t, 256)
        _check(x, qw, kernels.qmatmul(x, kernels.pack(qw)))


@pytest.mark.parametrize("t", [1, 9])
@pytest.mark.parametrize("type_name", ["Q4_0", "Q4_K", "Q6_K", "Q8_0"])
def test_threads_give_identical_results(type_name: str, t: int) -> None:
    """Each output is computed by exactly one thread in the same order: bitwise equal."""
    qw = _weight(type_name, 203, 512)
    pw = kernels.pack(qw)
    x = torch.randn(t, 512)
    one = kernels.qmatmul(x, pw, num_threads=1)
    for threads in (2, 3, 7):
        assert torch.equal(kernels.qmatmul(x, pw, num_threads=threads), one)


def test_strided_rows_are_used_in_place() -> None:
    qw = _weight("Q4_K", 20, 512)
    wide = np.zeros((20, qw.data.shape[1] + 40), dtype=np.uint8)
    wide[:, : qw.data.shape[1]] = qw.data
    view = QuantizedWeight("Q4_K", (20, 512), wide[:, : qw.data.shape[1]])
    pw = kernels.pack(view)
    assert np.shares_memory(pw.data, wide) and pw.row_stride == wide.shape[1]
    x = torch.randn(4, 512)
    _check(x, qw, kernels.qmatmul(x, pw))


def test_memmap_is_not_copied(tmp_path) -> None:
    qw = _weight("Q4_0", 64, 256)
    path = tmp_path / "w.bin"
    qw.data.tofile(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r", shape=qw.data.shape)
    pw = kernels.pack(QuantizedWeight("Q4_0", (64, 256), mm))
    assert np.shares_memory(pw.data, mm)
    x = torch.randn(2, 256)
    _check(x, qw, kernels.qmatmul(x, pw))


def test_out_argument_and_empty_input() -> None:
    qw = _weight("Q8_0", 10, 64)
    pw = kernels.pack(qw)
    x = torch.randn(3, 64)
    out = torch.empty(3, 10)
    assert kernels.qmatmul(x, pw, out=out) is out
    _check(x, qw, out)
    assert kernels.qmatmul(torch.empty(0, 64), pw).shape == (0, 10)


def test_reference_qmatmul_is_dequantize_then_matmul() -> None:
    qw = _weight("Q5_K", 7, 256)
    x = torch.randn(2, 256)
    ref = kernels.reference_qmatmul(x, qw)
    assert ref.dtype == torch.float64
    torch.testing.assert_close(ref, x.double() @ dense_weight(qw).T)


def test_bad_arguments_raise() -> None:
    pw = kernels.pack(_weight("Q4_0", 10, 64))
    with pytest.raises(ValueError):
        kernels.qmatmul(torch.randn(2, 32), pw)
    with pytest.raises(ValueError):
        kernels.qmatmul(torch.randn(2, 64, dtype=torch.float64), pw)
    with pytest.raises(ValueError):
        kernels.qmatmul(torch.randn(2, 64), pw, out=torch.empty(2, 9))
    with pytest.raises(ValueError):
        kernels.pack(QuantizedWeight("IQ2_XS", (10, 256), np.zeros((10, 66), np.uint8)))
    with pytest.raises(ValueError):
        kernels.pack(QuantizedWeight("Q4_0", (10, 64), np.zeros((10, 35), np.uint8)))
    with pytest.raises(ValueError):
        kernels.qmatmul(torch.randn(2, 64), pw, isa="sve2")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("t", [1, 3, 9])
def test_many_equals_one_at_a_time(t: int, isa: str) -> None:
    """Mixed types and row counts (q/k/v-like, and 32- with 256-value blocks): each output is
    bitwise the single-weight result, for any thread count."""
    k = 512
    shapes = [("Q4_0", 70), ("Q8_0", 16), ("Q4_K", 33), ("Q6_K", 5), ("Q5_0", 41), ("Q4_K", 1)]
    pws = [kernels.pack(_weight(name, n, k, seed=i)) for i, (name, n) in enumerate(shapes)]
    x = torch.randn(t, k, generator=torch.Generator().manual_seed(t))
    for threads in (1, 2, 3):
        outs = kernels.qmatmul_many(x, pws, num_threads=threads, isa=isa)
        assert len(outs) == len(pws)
        for pw, y in zip(pws, outs):
            assert y.shape == (t, pw.shape[0])
            assert torch.equal(y, kernels.qmatmul(x, pw, num_threads=1, isa=isa))


def test_many_edge_cases() -> None:
    pw = kernels.pack(_weight("Q4_0", 8, 64))
    assert kernels.qmatmul_many(torch.randn(1, 64), []) == []
    assert kernels.qmatmul_many(torch.randn(0, 64), [pw])[0].shape == (0, 8)
    with pytest.raises(ValueError, match="K = 32"):
        kernels.qmatmul_many(torch.randn(1, 32), [pw])
