"""Error bound of an int8-activation quantized matmul against the exact float64 product.

The kernels round each activation to int8 with one scale per block of 32 values (or 256 for the
K-quant row dots): d = max|x_block| / 127, so each x_k moves by at most d / 2 = max|x_block| / 254.
The weight itself is used exactly (its dequantized values are the reference's). Hence for one
output, |y - y_ref| <= sum over blocks b of max|x_b| / 254 * sum_{k in b} |w_k|, taking blocks of
256 (a 256-block max bounds every 32-block max inside it). float32 products and sums add a relative
error far below 1e-5 of sum |x_k| |w_k|, which the bound adds as slack.
"""
from __future__ import annotations

import numpy as np
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from corral.loader.quantized import QuantizedWeight


def dense_weight(qw: QuantizedWeight) -> torch.Tensor:
    """(N, K) float64 dequantized by gguf-py."""
    w = dequantize(np.ascontiguousarray(qw.data), GGMLQuantizationType[qw.type_name])
    return torch.from_numpy(np.asarray(w, dtype=np.float64).reshape(qw.shape))


def int8_activation_bound(x: torch.Tensor, w: torch.Tensor, block: int = 256) -> torch.Tensor:
    """(T, N) float64 worst-case |error| for x (T, K) and dense w (N, K)."""
    t, k = x.shape
    xa = x.to(torch.float64).abs()
    wa = w.abs()
    if k % block:
        block = 32
    xmax = xa.reshape(t, k // block, block).amax(dim=-1)  # (T, K / block)
    wsum = wa.reshape(w.shape[0], k // block, block).sum(dim=-1)  # (N, K / block)
    return xmax @ wsum.T / 254.0 + 1e-5 * (xa @ wa.T)
