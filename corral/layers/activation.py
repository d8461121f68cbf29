"""Gated activations of the MLP block."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from corral.kernels import ops

ACTIVATIONS = {"silu": F.silu, "gelu": F.gelu, "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh")}


def gated(act_name: str, gate: torch.Tensor, up: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """act(gate) * up, the SwiGLU/GeGLU core of Llama-family MLPs. Shapes (..., intermediate);
    written into `out` (which may be gate or up) when given."""
    if act_name == "silu":
        return ops.silu_mul(gate, up, out)
    if act_name == "gelu_pytorch_tanh":
        return ops.gelu_tanh_mul(gate, up, out)
    y = ACTIVATIONS[act_name](gate) * up
    return y if out is None else out.copy_(y)
