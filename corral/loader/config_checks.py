"""Checks across the fields of a ModelConfig, whichever file it came from.

`config_values` checks each value alone; this module checks what only makes sense together (the
heads divide evenly, rotary has an even head width) and the rope scaling dict, whose keys depend on
its type. Both run before any tensor is looked at; `shape_checks` then ties the sizes to the file.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from corral.errors import ModelFileError, UnsupportedModelError
from corral.loader.config import ModelConfig
from corral.loader.config_values import MAX_DIM, read_float, read_int, show

# corral.layers.activation.ACTIVATIONS (the loader sits below layers; a test keeps them equal)
SUPPORTED_ACTIVATIONS = ("silu", "gelu", "gelu_pytorch_tanh")
ROPE_TYPES = ("linear", "dynamic", "llama3", "yarn")
MAX_ROPE_THETA = 1e12  # real bases go up to 1e8 or so


def check_config(cfg: ModelConfig, path: str | Path, rope_types: tuple[str, ...] = ()) -> ModelConfig:
    """Return `cfg` with its rope scaling normalized; raise ModelFileError (or UnsupportedModelError
    for an activation or rope type corral does not implement) when the fields do not fit together.
    `rope_types`: scaling types a model family reads itself, beyond ROPE_TYPES."""
    if cfg.num_attention_heads % cfg.num_key_value_heads:
        raise ModelFileError(path, f"{cfg.num_attention_heads} attention heads cannot be shared by "
                                   f"{cfg.num_key_value_heads} key/value heads (it must divide them); "
                                   "the model's configuration is corrupt")
    if cfg.head_dim % 2:
        raise ModelFileError(path, f"the head width {cfg.head_dim} is odd; rotary embeddings need an even one")
    if cfg.q_size > MAX_DIM:
        raise ModelFileError(path, f"{cfg.num_attention_heads} heads of {cfg.head_dim} are too large; "
                                   "the model's configuration is corrupt")
    if cfg.hidden_act not in SUPPORTED_ACTIVATIONS:
        raise UnsupportedModelError(path, f"activation {show(cfg.hidden_act)} is not supported "
                                          f"(supported: {', '.join(SUPPORTED_ACTIVATIONS)})")
    read_float(path, "rope_theta", cfg.rope_theta, lo=1.0, hi=MAX_ROPE_THETA)
    read_float(path, "rms_norm_eps", cfg.rms_norm_eps, lo=0.0, hi=1.0)
    if cfg.sliding_window is not None:
        read_int(path, "sliding_window", cfg.sliding_window)
    scaling = check_rope_scaling(cfg.rope_scaling, cfg.head_dim, path, rope_types)
    return dataclasses.replace(cfg, rope_scaling=scaling)


def check_rope_scaling(scaling: Any, head_dim: int, path: str | Path,
                       rope_types: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """A rope scaling dict with "rope_type" set and its numbers checked, or None for plain rotary.
    Keys corral does not read are kept as they are."""
    if scaling is None:
        return None
    if not isinstance(scaling, dict):
        raise ModelFileError(path, f"rope_scaling is {show(scaling)}, but must be an object or null")
    out = dict(scaling)
    kind = out.pop("type", None)  # the transformers 4.3x name of rope_type
    kind = out.get("rope_type", kind)
    if kind is None or kind == "default":
        return None
    if kind not in ROPE_TYPES + rope_types:
        raise UnsupportedModelError(path, f"rope_scaling type {show(kind)} is not supported "
                                          f"(supported: {', '.join(ROPE_TYPES)})")
    out["rope_type"] = kind
    for key in ("factor", "low_freq_factor", "high_freq_factor", "beta_fast", "beta_slow", "attention_factor"):
        if out.get(key) is not None:
            out[key] = read_float(path, f"rope_scaling.{key}", out[key], lo=0.0, hi=1e6)
    if out.get("original_max_position_embeddings") is not None:
        out["original_max_position_embeddings"] = read_int(
            path, "rope_scaling.original_max_position_embeddings", out["original_max_position_embeddings"])
    if kind == "llama3" and out.get("low_freq_factor", 1.0) >= out.get("high_freq_factor", 4.0):
        raise ModelFileError(path, "rope_scaling.low_freq_factor must be below high_freq_factor; "
                                   "the model's configuration is corrupt")
    if out.get("freq_factors") is not None:
        out["freq_factors"] = _freq_factors(out["freq_factors"], head_dim, path)
    for key in ("short_factor", "long_factor"):  # LongRoPE: one factor per rotary frequency
        if out.get(key) is not None:
            out[key] = _rope_factor_list(out[key], f"rope_scaling.{key}", head_dim, path)
    return out


def _rope_factor_list(value: Any, name: str, head_dim: int, path) -> list[float]:
    """At most head_dim / 2 finite factors (partial rotary has fewer frequencies than that)."""
    if not isinstance(value, (list, tuple)) or not 0 < len(value) <= head_dim // 2:
        raise ModelFileError(path, f"{name} must be a list of at most {head_dim // 2} numbers for a head of "
                                   f"{head_dim}, got {show(value)}")
    return [read_float(path, name, f, lo=0.0, hi=1e6) for f in value]


def _freq_factors(value: Any, head_dim: int, path) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != head_dim // 2:
        raise ModelFileError(path, f"rope frequency factors must be {head_dim // 2} numbers for a head of "
                                   f"{head_dim}, got {show(value)}")
    return [read_float(path, "rope frequency factor", f, lo=0.0, hi=1e6) for f in value]
