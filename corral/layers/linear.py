"""Linear layers that load themselves from dense tensors or GGUF quantized blocks.

A quantized weight stays in its block format when the CPU kernels support the type (see
`corral.kernels`); otherwise it is dequantized once at load, which is always correct.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from corral.loader.quantized import QuantizedWeight


class Linear(nn.Module):
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
        if isinstance(value, QuantizedWeight):
            if keep_quantized and _pack_with_kernels(self, value):
                return
            from corral.loader.dequant import dequantize

            value = dequantize(value.type_name, value.data, value.shape)
        if tuple(value.shape) != (self.out_features, self.in_features):
            raise ValueError(f"weight shape {tuple(value.shape)} != {(self.out_features, self.in_features)}")
        self.weight = value.to(self.dtype).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., in_features) -> (..., out_features)
        if self.packed is not None:
            from corral import kernels

            shape = x.shape
            y = kernels.qmatmul(x.reshape(-1, self.in_features).float().contiguous(), self.packed)
            y = y.reshape(*shape[:-1], self.out_features).to(x.dtype)
            return y + self.bias if self.bias is not None else y
        return nn.functional.linear(x, self.weight, self.bias)


def _pack_with_kernels(layer: Linear, qw: QuantizedWeight) -> bool:
    try:
        from corral import kernels
    except ImportError:
        return False
    if not kernels.is_available():
        warnings.warn("corral's CPU kernels are not built; quantized weights are dequantized (slower, more memory)")
        return False
    if qw.type_name not in kernels.SUPPORTED_TYPES:
        return False
    layer.packed = kernels.pack(qw)
    return True


def project_all(x: torch.Tensor, layers: list[Linear]) -> list[torch.Tensor]:
    """[layer(x) for layer in layers] for projections that read the same input (q/k/v, gate/up).

    When every layer is kept quantized, one kernel call quantizes x once and runs them all.
    """
    if any(layer.packed is None for layer in layers):
        return [layer(x) for layer in layers]
    from corral import kernels

    shape = x.shape
    flat = x.reshape(-1, shape[-1]).float().contiguous()
    outs = kernels.qmatmul_many(flat, [layer.packed for layer in layers])
    results = []
    for layer, y in zip(layers, outs):
        y = y.reshape(*shape[:-1], layer.out_features).to(x.dtype)
        results.append(y + layer.bias if layer.bias is not None else y)
    return results
