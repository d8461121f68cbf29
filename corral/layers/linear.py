"""Linear layers that load themselves from dense tensors or GGUF quantized blocks.

A quantized weight stays in its block format when the CPU kernels support the type (see
`corral.kernels`); otherwise it is dequantized once at load, which is always correct.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from corral import kernels
from corral.layers.lean_module import LeanModule
from corral.loader.gguf_file import release_pages
from corral.loader.quantized import QuantizedWeight


class Linear(LeanModule):
    """y = x @ W.T (+ b), W of shape (out_features, in_features) as in `nn.Linear`."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False, dtype=torch.float32):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.dtype = dtype
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None
        self.has_bias = bias
        self.packed = None  # kernel-ready quantized weight, when kept quantized

    def load_param(self, name: str, value: torch.Tensor | QuantizedWeight, keep_quantized: bool = False) -> None:
        if name == "bias":
            self.bias = value.to(self.dtype).reshape(self.out_features)
            return
        if tuple(value.shape) != (self.out_features, self.in_features):
            raise ValueError(
                f"weight of shape {tuple(value.shape)} does not fit a linear layer "
                f"({self.out_features}, {self.in_features})"
            )
        if isinstance(value, QuantizedWeight):
            if keep_quantized and value.row_order is not None:
                value = _rows_in_output_order(value)
            if keep_quantized and _pack_with_kernels(self, value):
                return
            value = value.dequantize()
        self.weight = value.to(self.dtype).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., in_features) -> (..., out_features)
        if self.packed is None:
            return self._dense(x, self.bias)
        y = self._quantized(x)
        return y if self.bias is None else y.add_(self.bias)  # y is a fresh tensor

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """x @ W.T without the bias, for callers that add it in a later fused op."""
        return self._dense(x, None) if self.packed is None else self._quantized(x)

    def _dense(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.weight is None:
            raise RuntimeError("Linear used before its weight was loaded")
        return nn.functional.linear(x.to(self.weight.dtype), self.weight, bias).to(x.dtype)

    def _quantized(self, x: torch.Tensor) -> torch.Tensor:
        return self._finish(kernels.qmatmul(_flat(x, self.in_features), self.packed), x)

    def _finish(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Kernel output (N, out_features) -> x's leading shape and dtype."""
        if x.dim() == 2 and x.dtype is torch.float32:  # the engine's case: no reshapes or casts
            return y
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)


def _flat(x: torch.Tensor, in_features: int) -> torch.Tensor:
    return x if x.dim() == 2 and x.dtype is torch.float32 else x.reshape(-1, in_features).float()


def _rows_in_output_order(qw: QuantizedWeight) -> QuantizedWeight:
    """qw with its rows copied into output order (llama.cpp's permuted Q/K rows), so that every
    call's outputs come out in order, instead of a gather and a copy after each call (two per
    layer and step, 0.3-0.4 ms a step of a 30-layer model). Rows are whole blocks, so any type
    reorders this way; only the copied weights leave the file's pages."""
    data = np.ascontiguousarray(qw.data[qw.row_order])
    release_pages(qw.data)
    return QuantizedWeight(qw.type_name, qw.shape, data, float_activations=qw.float_activations)


def _pack_with_kernels(layer: Linear, qw: QuantizedWeight) -> bool:
    """Keep `qw` in its blocks for the CPU kernels; False (with a warning) when they cannot run it,
    in which case the caller dequantizes: correct, but slower and 4 / bits-per-weight the memory."""
    from corral import kernels

    if kernels.is_available() and qw.type_name in kernels.SUPPORTED_TYPES:
        layer.packed = kernels.pack(qw, repack=True, float_activations=qw.float_activations)
        if layer.packed.layout != "gguf":  # a copy: the file's pages need not stay resident
            release_pages(qw.data)
        return True
    reason = ("corral's quantized kernels are not built" if not kernels.is_available()
              else f"no quantized kernel for {qw.type_name}")
    warnings.warn(f"{reason}: dequantizing a {qw.type_name} {tuple(qw.shape)} weight to float32 "
                  "(slower, and more memory than the file)", RuntimeWarning, stacklevel=3)
    return False


def project_all(x: torch.Tensor, layers: list[Linear], *, with_bias: bool = True,
                out: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """[layer(x) for layer in layers] for projections that read the same input (q/k/v, gate/up);
    with_bias=False leaves the biases out (the caller fuses them into a later op). `out` holds one
    contiguous tensor per layer to write into, of any shape with x's rows times out_features
    elements (e.g. (T, heads, head_dim)); those are returned then.

    When every layer is kept quantized, one kernel call quantizes x once and runs them all.
    """
    if any(layer.packed is None for layer in layers):
        ys = [layer(x) if with_bias else layer.matmul(x) for layer in layers]
        return ys if out is None else [o.copy_(y.view(o.shape)) for o, y in zip(out, ys)]
    flat = _flat(x, x.shape[-1])
    if out is not None and flat is not x:
        # a reshape first: compute, then copy into place
        ys = project_all(flat, layers, with_bias=False)
        outs = [o.copy_(y.view(o.shape)) for o, y in zip(out, ys)]
    elif out is not None:
        outs = kernels.qmatmul_many(flat, [layer.packed for layer in layers], out=out)
    else:
        outs = kernels.qmatmul_many(flat, [layer.packed for layer in layers])
        outs = [layer._finish(y, x) for layer, y in zip(layers, outs)]
    if with_bias:
        for layer, y in zip(layers, outs):
            if layer.bias is not None:
                y.view(-1, layer.out_features).add_(layer.bias)
    return outs
