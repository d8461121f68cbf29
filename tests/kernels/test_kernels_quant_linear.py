"""The model's Linear layer on quantized weights: with the kernels, and its dense fallback when they
are missing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from corral import kernels
from corral.kernels.random_blocks import random_blocks
from corral.layers.linear import Linear
from corral.loader.quantized import QuantizedWeight
from tests.kernels.kernel_bounds import dense_weight, int8_activation_bound


def _weight(type_name: str, n: int, k: int) -> QuantizedWeight:
    return QuantizedWeight(type_name, (n, k), random_blocks(type_name, n, k, np.random.default_rng(3)))


@pytest.mark.skipif(not kernels.is_available(), reason="quantized kernels not built")
@pytest.mark.parametrize("type_name", ["Q4_0", "Q4_K", "Q6_K"])
def test_forward_uses_kernels(type_name: str) -> None:
    qw = _weight(type_name, 24, 256)
    layer = Linear(256, 24, bias=True)
    layer.load_param("bias", torch.randn(24))
    layer.load_param("weight", qw, keep_quantized=True)
    assert layer.packed is not None and layer.weight is None
    x = torch.randn(2, 5, 256)  # (B, T, K)
    y = layer(x)
    assert y.shape == (2, 5, 24)
    w = dense_weight(qw)
    x2 = x.reshape(-1, 256)
    ref = (x2.double() @ w.T + layer.bias.double()).reshape(2, 5, 24)
    bound = int8_activation_bound(x2, w).reshape(2, 5, 24)
    assert ((y.double() - ref).abs() <= bound).all()


@pytest.mark.parametrize("type_name", ["Q4_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K"])
def test_fallback_without_extension_warns_and_is_exact(monkeypatch, type_name: str) -> None:
    monkeypatch.setattr(kernels, "is_available", lambda: False)
    qw = _weight(type_name, 12, 256)
    layer = Linear(256, 12)
    with pytest.warns(RuntimeWarning, match="dequantizing"):
        layer.load_param("weight", qw, keep_quantized=True)
    assert layer.packed is None
    x = torch.randn(3, 256)
    w = dense_weight(qw)
    ref = x.double() @ w.T
    # A float32 dot product of K terms is within K * 2^-24 * sum|x_i w_i| of the exact value: a
    # flat rtol/atol fails on outputs that cancel to near zero.
    bound = 256 * 2.0**-24 * (x.double().abs() @ w.abs().T) + 1e-12
    assert ((layer(x).double() - ref).abs() <= bound).all()


@pytest.mark.parametrize("kept", [True, False])
def test_row_order_puts_rows_in_output_order_at_load(monkeypatch, kept: bool) -> None:
    """A weight whose rows are permuted in the file (llama.cpp's Q/K order) computes the outputs of
    its `row_order` rows, alone and in project_all, with the kernels or dequantized. Kept quantized,
    its rows are copied into output order once at load, so no call gathers its outputs."""
    from corral.layers.linear import project_all

    if not kept:
        monkeypatch.setattr(kernels, "is_available", lambda: False)
    order = np.random.default_rng(5).permutation(24)
    plain = _weight("Q4_0", 24, 256)
    permuted = QuantizedWeight("Q4_0", (24, 256), plain.data, row_order=order)
    layers = [Linear(256, 24, bias=True) for _ in range(2)]
    bias = torch.randn(24)
    for layer, qw in zip(layers, (plain, permuted)):
        layer.load_param("bias", bias)
        with pytest.warns(RuntimeWarning) if not kept else _no_warning():
            layer.load_param("weight", qw, keep_quantized=True)
    assert (layers[1].packed is not None) == kept
    if kept:
        assert np.array_equal(layers[1].packed.data, plain.data[order])
    x = torch.randn(3, 256)
    index = torch.from_numpy(order)
    want = layers[0](x)[:, index] - bias[index] + bias
    torch.testing.assert_close(layers[1](x), want, rtol=0, atol=1e-5)
    together = project_all(x, layers)
    torch.testing.assert_close(together[1], want, rtol=0, atol=1e-5)
    torch.testing.assert_close(permuted.dequantize(), plain.dequantize()[index])


def test_bfloat16_input_keeps_its_dtype() -> None:
    layer = Linear(64, 8)
    with pytest.warns(RuntimeWarning) if not kernels.is_available() else _no_warning():
        layer.load_param("weight", _weight("Q8_0", 8, 64), keep_quantized=True)
    y = layer(torch.randn(4, 64, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16 and y.shape == (4, 8)


def test_wrong_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        Linear(128, 8).load_param("weight", _weight("Q4_0", 8, 64), keep_quantized=True)


class _no_warning:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


@pytest.mark.filterwarnings("ignore:corral's quantized kernels are not built")
@pytest.mark.parametrize("quantized", [True, False])
def test_project_all_writes_into_given_tensors(quantized: bool) -> None:
    from corral.layers.linear import project_all

    layers = []
    for n, seed in ((32, 1), (16, 2)):
        layer = Linear(64, n, bias=True)
        layer.load_param("bias", torch.randn(n))
        qw = QuantizedWeight("Q8_0", (n, 64), random_blocks("Q8_0", n, 64, np.random.default_rng(seed)))
        layer.load_param("weight", qw, keep_quantized=quantized)
        layers.append(layer)
    x = torch.randn(3, 64)
    out = [torch.empty(3, 4, 8), torch.empty(3, 2, 8)]  # (T, heads, head_dim)
    got = project_all(x, layers, out=out)
    assert got[0] is out[0] and got[1] is out[1]
    for layer, y in zip(layers, out):
        assert torch.equal(y.view(3, -1), layer(x))
    bare = project_all(x, layers, with_bias=False, out=[torch.empty(3, 32), torch.empty(3, 16)])
    for layer, y in zip(layers, bare):
        assert torch.allclose(y + layer.bias, layer(x), atol=1e-6)


@pytest.mark.skipif(not kernels.is_available(), reason="quantized kernels not built")
def test_qmatmul_many_rejects_wrong_out() -> None:
    w = kernels.pack(_weight("Q4_0", 8, 64))
    x = torch.randn(2, 64)
    for bad in ([torch.empty(2, 9)], [torch.empty(2, 8, dtype=torch.float64)], [torch.empty(8, 2).t()], []):
        with pytest.raises(ValueError, match="out must be"):
            kernels.qmatmul_many(x, [w], out=bad)
