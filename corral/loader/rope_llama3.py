"""Llama 3.1-style rotary frequency scaling ("rope_type": "llama3").

llama.cpp's converter stores the scaling as a `rope_freqs` tensor of per-frequency divisors
instead of the four HF parameters; these functions compute that tensor and recover the
parameters when they are the standard ones.
"""
from __future__ import annotations

import math

import numpy as np

# The parameters every released Llama 3.1/3.2/3.3 model uses, except `factor` (8 or 32).
STANDARD = {"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}


def llama3_freq_factors(rope_scaling: dict, head_dim: int, rope_theta: float) -> np.ndarray:
    """(head_dim // 2,) float32 divisors d_i: the scaled inverse frequency is inv_freq_i / d_i."""
    factor = float(rope_scaling["factor"])
    low = float(rope_scaling.get("low_freq_factor", 1.0))
    high = float(rope_scaling.get("high_freq_factor", 4.0))
    old_ctx = float(rope_scaling.get("original_max_position_embeddings", 8192))
    inv_freq = 1.0 / rope_theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * math.pi / inv_freq
    smooth = (old_ctx / wavelen - low) / (high - low)
    out = 1.0 / ((1 - smooth) / factor + smooth)  # the band between the two wavelengths
    out = np.where(wavelen < old_ctx / high, 1.0, out)
    out = np.where(wavelen > old_ctx / low, factor, out)
    return out.astype(np.float32)


def llama3_scaling_from_factors(factors: np.ndarray, head_dim: int, rope_theta: float) -> dict:
    """The HF rope_scaling dict behind a `rope_freqs` tensor.

    Several parameter sets can give the same divisors, so the standard Llama 3.1 ones are tried
    first; when they do not reproduce the tensor, the dict carries only the factor and the exact
    divisors under "freq_factors" (a list), which rotary code should then use directly.
    """
    factors = np.asarray(factors, dtype=np.float32).reshape(-1)
    factor = float(factors.max())
    candidate = {"rope_type": "llama3", "factor": factor, **STANDARD}
    if np.allclose(llama3_freq_factors(candidate, head_dim, rope_theta), factors, rtol=1e-5, atol=1e-6):
        return candidate
    return {"rope_type": "llama3", "factor": factor, "freq_factors": [float(f) for f in factors]}
