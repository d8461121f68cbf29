"""A linear layer whose weight stays in GGUF blocks: y = x @ W^T (+ bias) with the quantized kernels.

When the kernels are not built (`corral.kernels.is_available()` is False) or do not know the type,
the weight is dequantized once to float32 at load time, with a warning: correct, but it takes
4 / bits-per-weight times the memory and runs at dense speed.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from corral import kernels
from corral.loader.quantized import QuantizedWeight


class QuantLinear(nn.Module):
    """`nn.Linear(in_features, out_features, bias)` with a quantized weight set by `load_quantized`.

    forward: x (..., in_features) of any float dtype -> (..., out_features) of x's dtype.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None
        self.packed: kernels.PackedWeight | None = None
        self.register_buffer("dense_weight", None, persistent=False)  # (out, in) float32, fallback only

    def load_quantized(self, qw: QuantizedWeight) -> None:
        """Take the weight's GGUF blocks; qw.shape must be (out_features, in_features)."""
        if tuple(qw.shape) != (self.out_features, self.in_features):
            raise ValueError(
                f"weight of shape {tuple(qw.shape)} does not fit a linear layer "
                f"({self.out_features}, {self.in_features})"
            )
        if kernels.is_available() and qw.type_name in kernels.SUPPORTED_TYPES:
            self.packed = kernels.pack(qw)
            self.dense_weight = None
            return
        reason = "corral's quantized kernels are not built" if not kernels.is_available() else (
            f"no quantized kernel for {qw.type_name}"
        )
        warnings.warn(
            f"{reason}: dequantizing a {qw.type_name} {tuple(qw.shape)} weight to float32 "
            "(slower, and more memory than the file)",
            RuntimeWarning,
            stacklevel=2,
        )
        self.packed = None
        self.dense_weight = _dequantize(qw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features).to(torch.float32)  # (T, K)
        if self.packed is not None:
            y = kernels.qmatmul(x2, self.packed)  # (T, N)
        elif self.dense_weight is not None:
            y = x2 @ self.dense_weight.T
        else:
            raise RuntimeError("QuantLinear used before load_quantized")
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        kind = self.packed.type_name if self.packed is not None else "dense fallback"
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, {kind}"


def _dequantize(qw: QuantizedWeight) -> torch.Tensor:
    """(N, K) float32 from GGUF blocks."""
    try:
        from corral.loader.dequant import dequantize
    except ImportError:
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize as gguf_dequantize

        dense = gguf_dequantize(np.ascontiguousarray(qw.data), GGMLQuantizationType[qw.type_name])
        return torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32).reshape(qw.shape))
    return dequantize(qw.type_name, qw.data, qw.shape).reshape(qw.shape).contiguous()
