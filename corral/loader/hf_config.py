"""config.json (a parsed dict) -> ModelConfig, with Hugging Face defaults and semantics."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from corral.errors import UnsupportedModelError
from corral.loader.architectures import HF_ARCHS, HF_MODEL_TYPES, ArchSpec
from corral.loader.config import ModelConfig
from corral.loader.family import family_for_hf, family_names


def config_from_hf(d: dict[str, Any], path: str | Path = "config.json") -> ModelConfig:
    """Build a ModelConfig from a config.json dict; `path` only goes into error messages.

    Understands both the transformers 4 keys (rope_theta, rope_scaling) and the transformers 5
    ones (rope_parameters), `eos_token_id` as an int or a list, head_dim absent or null.
    """
    family = family_for_hf(d)
    if family is not None:
        d = family.hf_text_config(d)
    spec = family.spec if family is not None else _spec(d, path)
    hidden = int(d["hidden_size"])
    heads = int(d["num_attention_heads"])
    rope_theta, rope_scaling = _rope(d)
    sliding = d.get("sliding_window")
    if spec.model_type in ("qwen2", "qwen3") and not d.get("use_sliding_window", False):
        sliding = None  # Qwen configs carry a window size they do not use
    cfg = ModelConfig(
        architecture=spec.hf_architecture,
        vocab_size=int(d["vocab_size"]),
        hidden_size=hidden,
        intermediate_size=int(d["intermediate_size"]),
        num_hidden_layers=int(d["num_hidden_layers"]),
        num_attention_heads=heads,
        num_key_value_heads=int(d.get("num_key_value_heads") or heads),
        head_dim=int(d.get("head_dim") or hidden // heads),
        max_position_embeddings=int(d.get("max_position_embeddings", 4096)),
        rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
        rope_theta=rope_theta,
        rope_scaling=rope_scaling,
        tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
        attention_bias=spec.always_qkv_bias or bool(d.get("attention_bias", False)),
        qk_norm=spec.qk_norm,
        sliding_window=int(sliding) if sliding else None,
        hidden_act=str(d.get("hidden_act", "silu")),
        bos_token_id=d.get("bos_token_id"),
        eos_token_ids=_eos_ids(d.get("eos_token_id")),
        torch_dtype=str(d.get("torch_dtype") or d.get("dtype") or "float32"),
        model_type=spec.model_type,
        extra={k: d[k] for k in ("_name_or_path",) if k in d},
    )
    return cfg if family is None else family.adjust_hf_config(cfg, d)


def _spec(d: dict, path) -> ArchSpec:
    for name in d.get("architectures") or []:
        if name in HF_ARCHS:
            return HF_ARCHS[name]
    spec = HF_MODEL_TYPES.get(d.get("model_type", ""))
    if spec is None:
        found = (d.get("architectures") or [d.get("model_type")])[0]
        raise UnsupportedModelError(
            path, f"architecture {found!r} is not supported; corral runs: {', '.join(sorted([*HF_ARCHS, *family_names()]))}"
        )
    return spec


def _rope(d: dict) -> tuple[float, dict | None]:
    """(rope_theta, rope_scaling with "rope_type" set, or None for plain rotary)."""
    params = dict(d.get("rope_parameters") or {})
    theta = float(d.get("rope_theta") or params.pop("rope_theta", None) or 10000.0)
    params.pop("rope_theta", None)
    scaling = dict(d.get("rope_scaling") or params)
    if "type" in scaling and "rope_type" not in scaling:
        scaling["rope_type"] = scaling.pop("type")
    scaling.pop("type", None)
    if scaling.get("rope_type", "default") == "default":
        return theta, None
    return theta, scaling


def _eos_ids(v: Any) -> tuple[int, ...]:
    if v is None:
        return ()
    if isinstance(v, (list, tuple)):
        return tuple(int(x) for x in v)
    return (int(v),)
