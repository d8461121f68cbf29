"""Rotary position embeddings in Hugging Face's half-split layout (rotate_half), with the
rope_scaling variants real configs use: linear, llama3 (Llama 3.1+), yarn, dynamic (static form).

GGUF llama-arch Q/K weights are un-permuted by the loader, so one layout serves both formats.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from corral.errors import UnsupportedModelError


def inverse_frequencies(head_dim: int, theta: float, scaling: dict[str, Any] | None,
                        max_positions: int | None = None) -> tuple[torch.Tensor, float]:
    """Returns (inv_freq (head_dim/2,), attention_factor) for the config's rope scaling.

    LongRoPE (Phi-3) divides each frequency by its long factor when the model runs for more
    positions than `original_max_position_embeddings` (max_positions), by its short one otherwise:
    chosen once for the context, as llama.cpp does (transformers switches per sequence, so the two
    agree on every sequence while the context is within the original one)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    if not scaling:
        return inv_freq, 1.0
    kind = scaling.get("rope_type") or scaling.get("type") or "default"
    factor = float(scaling.get("factor", 1.0))
    if kind == "default":
        return inv_freq, 1.0
    if kind == "linear":
        return inv_freq / factor, 1.0
    if kind == "dynamic":
        # Dynamic NTK rescales only past the original context; within it, frequencies are unchanged.
        return inv_freq, 1.0
    if kind == "llama3" and scaling.get("freq_factors") is not None:
        # A GGUF `rope_freqs` tensor no standard parameter set reproduces: its per-frequency
        # divisors, as llama.cpp applies them.
        factors = torch.tensor(scaling["freq_factors"], dtype=torch.float64)
        if factors.shape != inv_freq.shape:
            raise UnsupportedModelError(
                "rope_freqs", f"{factors.numel()} rope frequency factors for a head of {head_dim} (needs {head_dim // 2})"
            )
        return inv_freq / factors, 1.0
    if kind == "llama3":
        low = float(scaling.get("low_freq_factor", 1.0))
        high = float(scaling.get("high_freq_factor", 4.0))
        old_ctx = float(scaling.get("original_max_position_embeddings", 8192))
        low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old_ctx / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        return torch.where(medium, smoothed, scaled), 1.0
    if kind == "yarn":
        return _yarn(inv_freq, head_dim, theta, scaling, factor)
    if kind == "longrope":
        original = int(scaling["original_max_position_embeddings"])
        use_long = max_positions is not None and max_positions > original
        factors = torch.tensor(scaling["long_factor" if use_long else "short_factor"], dtype=torch.float64)
        if factors.shape != inv_freq.shape:
            raise UnsupportedModelError(
                "config.json", f"{factors.numel()} LongRoPE factors for a head of {head_dim} (needs {head_dim // 2})"
            )
        attention_factor = scaling.get("attention_factor")
        if attention_factor is None:
            attention_factor = math.sqrt(1 + math.log(factor) / math.log(original)) if factor > 1 else 1.0
        return inv_freq / factors, float(attention_factor)
    raise UnsupportedModelError("config.json", f"rope_scaling type {kind!r} is not supported")


def _yarn(inv_freq, head_dim, theta, scaling, factor):
    old_ctx = float(scaling.get("original_max_position_embeddings", 4096))
    beta_fast = float(scaling.get("beta_fast", 32))
    beta_slow = float(scaling.get("beta_slow", 1))
    attention_factor = scaling.get("attention_factor")
    if attention_factor is None:
        attention_factor = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0

    def correction_dim(rotations: float) -> float:
        return (head_dim * math.log(old_ctx / (rotations * 2 * math.pi))) / (2 * math.log(theta))

    low = max(math.floor(correction_dim(beta_fast)), 0)
    high = min(math.ceil(correction_dim(beta_slow)), head_dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    extrapolation = 1 - ramp
    inv = (inv_freq / factor) * (1 - extrapolation) + inv_freq * extrapolation
    return inv, float(attention_factor)


class RotaryEmbedding(torch.nn.Module):
    """Precomputed cos/sin tables indexed by absolute position."""

    def __init__(self, head_dim: int, max_positions: int, theta: float, scaling: dict[str, Any] | None):
        super().__init__()
        inv_freq, attn_factor = inverse_frequencies(head_dim, theta, scaling, max_positions)
        t = torch.arange(max_positions, dtype=torch.float64)
        freqs = torch.outer(t, inv_freq)  # (P, D/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (P, D)
        self.register_buffer("cos", (emb.cos() * attn_factor).float(), persistent=False)
        self.register_buffer("sin", (emb.sin() * attn_factor).float(), persistent=False)

    def tables(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin (T, D) for these positions: gathered once per step, shared by all layers, and
        applied to q and k by `corral.kernels.ops.bias_norm_rope_` (rotate_half layout)."""
        return self.cos[positions], self.sin[positions]
