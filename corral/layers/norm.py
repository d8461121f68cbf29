"""RMSNorm as Llama/Qwen define it: computed in float32, scaled by a learned weight."""
from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., dim)
        if x.dtype == torch.float32:
            return torch.nn.functional.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight.float() * x32).to(dtype)

    def load_param(self, name: str, tensor: torch.Tensor, keep_quantized: bool = False) -> None:
        if not isinstance(tensor, torch.Tensor):  # a norm stored quantized: dequantize (tiny)
            from corral.loader.dequant import dequantize

            tensor = dequantize(tensor.type_name, tensor.data, tensor.shape)
        self.weight = nn.Parameter(tensor.to(torch.float32).reshape(self.weight.shape), requires_grad=False)
