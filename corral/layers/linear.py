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
        self.out_order: torch.Tensor | None = None  # (out_features,) packed row of each output, if permuted

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
            if keep_quantized and _pack_with_kernels(self, value):
                if value.row_order is not None:
                    self.out_order = torch.from_numpy(value.row_order)
                return
            value = value.dequantize()
        self.weight = value.to(self.dtype).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., in_features) -> (..., out_features)
        if self.packed is not None:
            from corral import kernels

            y = kernels.qmatmul(x.reshape(-1, self.in_features).float().contiguous(), self.packed)
            return _finish(self, y, x.shape, x.dtype)
        if self.weight is None:
            raise RuntimeError("Linear used before its weight was loaded")
        y = nn.functional.linear(x.to(self.dtype), self.weight, self.bias)
        return y.to(x.dtype)


def _pack_with_kernels(layer: Linear, qw: QuantizedWeight) -> bool:
    """Keep `qw` in its blocks for the CPU kernels; False (with a warning) when they cannot run it,
    in which case the caller dequantizes: correct, but slower and 4 / bits-per-weight the memory."""
    from corral import kernels

    if kernels.is_available() and qw.type_name in kernels.SUPPORTED_TYPES:
        layer.packed = kernels.pack(qw)
        return True
    reason = ("corral's quantized kernels are not built" if not kernels.is_available()
              else f"no quantized kernel for {qw.type_name}")
    warnings.warn(f"{reason}: dequantizing a {qw.type_name} {tuple(qw.shape)} weight to float32 "
                  "(slower, and more memory than the file)", RuntimeWarning, stacklevel=3)
    return False


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
    return [_finish(layer, y, shape, x.dtype) for layer, y in zip(layers, outs)]


def _finish(layer: Linear, y: torch.Tensor, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """Kernel output (N, out_features), in packed row order -> (*shape[:-1], out_features)."""
    if layer.out_order is not None:
        y = y.index_select(1, layer.out_order)  # (N, out) in the model's order
    y = y.reshape(*shape[:-1], layer.out_features).to(dtype)
    return y + layer.bias if layer.bias is not None else y
