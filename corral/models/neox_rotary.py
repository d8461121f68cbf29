"""NeoX-style rotary position embedding (the first half of each head rotates with the second)."""
from __future__ import annotations

import torch


def rotary_tables(T: int, dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin for positions 0..T-1: (T, dim) float32, computed in float64."""
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv)  # (T, dim/2)
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos().float(), emb.sin().float()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, heads, T, hd) rotated by position."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin
