"""Gated activations of the MLP block."""
from __future__ import annotations

import torch
import torch.nn.functional as F

ACTIVATIONS = {"silu": F.silu, "gelu": F.gelu, "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh")}


def gated(act_name: str, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """act(gate) * up, the SwiGLU/GeGLU core of Llama-family MLPs. Shapes (..., intermediate)."""
    return ACTIVATIONS[act_name](gate) * up
