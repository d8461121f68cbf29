"""RMSNorm as Llama/Qwen define it: computed in float32, scaled by a learned weight."""
from __future__ import annotations

import torch

from corral.kernels import ops
from corral.layers.lean_module import LeanModule


class RMSNorm(LeanModule):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = torch.ones(dim)  # a plain tensor like Linear's: read without nn.Module's lookup

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        """norm(x) (..., dim); with `residual`: residual += x in place, then (norm(residual), residual),
        the residual stream's add and the next norm in one pass. x's memory may hold the result
        then, so pass an x that is not needed afterwards (a layer's fresh output)."""
        if residual is None:
            return ops.rms_norm(x, self.weight, self.eps)
        return ops.add_rms_norm(x, residual, self.weight, self.eps, out=x), residual

    def load_param(self, name: str, tensor: torch.Tensor, keep_quantized: bool = False) -> None:
        if not isinstance(tensor, torch.Tensor):  # a norm stored quantized: dequantize (tiny)
            from corral.loader.dequant import dequantize

            tensor = dequantize(tensor.type_name, tensor.data, tensor.shape)
        self.weight = tensor.to(torch.float32).reshape(self.weight.shape).contiguous()
