"""config.json (a parsed dict) -> ModelConfig, with Hugging Face defaults and semantics."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from corral.errors import ModelFileError, UnsupportedModelError
from corral.loader.config import ModelConfig
from corral.loader.config_checks import MAX_ROPE_THETA, check_config
from corral.loader.config_values import read_bool, read_float, read_int, read_str, read_token_id, show
from corral.loader.family import Family, family_for_hf, family_names, read_family_settings


def config_from_hf(d: Any, path: str | Path = "config.json") -> ModelConfig:
    """Build a ModelConfig from a config.json dict; `path` only goes into error messages.

    Understands both the transformers 4 keys (rope_theta, rope_scaling) and the transformers 5
    ones (rope_parameters), `eos_token_id` as an int or a list, head_dim absent or null. Every
    value is checked for type and range before use: raises ModelFileError for a missing or
    malformed field (or a `d` that is not a dict), UnsupportedModelError for an architecture,
    activation or rope type corral does not run.
    """
    if not isinstance(d, dict):
        raise ModelFileError(path, f"must hold a JSON object ({{...}}), not {type(d).__name__}; re-download it")
    family = _family(d, path)
    d = read_family_settings(path, family.hf_text_config, d)
    if not isinstance(d, dict):
        raise ModelFileError(path, "text_config must be a JSON object ({...}); the config is corrupt")
    spec = family.spec

    def integer(key: str, default: Any = ..., lo: int = 1) -> int:
        value = d.get(key)
        if value is None:
            if default is ...:
                raise ModelFileError(path, f"{key} is missing; the config is incomplete")
            return default
        return read_int(path, key, value, lo=lo)

    def flag(key: str, default: bool = False) -> bool:
        value = d.get(key)
        return default if value is None else read_bool(path, key, value)

    hidden = integer("hidden_size")
    heads = integer("num_attention_heads")
    if d.get("head_dim") is None and hidden % heads:
        raise ModelFileError(path, f"hidden_size {hidden} does not split into {heads} attention heads and "
                                   "head_dim is not given; the config is corrupt")
    rope_theta, rope_scaling = _rope(d, path)
    sliding = d.get("sliding_window")
    cfg = ModelConfig(
        architecture=spec.hf_architecture,
        vocab_size=integer("vocab_size"),
        hidden_size=hidden,
        intermediate_size=integer("intermediate_size"),
        num_hidden_layers=integer("num_hidden_layers"),
        num_attention_heads=heads,
        num_key_value_heads=integer("num_key_value_heads", heads),
        head_dim=integer("head_dim", hidden // heads),
        max_position_embeddings=integer("max_position_embeddings", 4096),
        rms_norm_eps=read_float(path, "rms_norm_eps", d.get("rms_norm_eps", 1e-6), lo=0.0, hi=1.0),
        rope_theta=rope_theta,
        rope_scaling=rope_scaling,
        tie_word_embeddings=flag("tie_word_embeddings"),
        attention_bias=spec.always_qkv_bias or flag("attention_bias"),
        qk_norm=spec.qk_norm,
        sliding_window=None if sliding in (None, 0, False) else read_int(path, "sliding_window", sliding),
        hidden_act=read_str(path, "hidden_act", d.get("hidden_act", "silu"), max_len=64),
        bos_token_id=read_token_id(path, "bos_token_id", d.get("bos_token_id")),
        eos_token_ids=_eos_ids(d.get("eos_token_id"), path),
        torch_dtype=read_str(path, "torch_dtype", d.get("torch_dtype") or d.get("dtype") or "float32", max_len=32),
        model_type=spec.model_type,
        extra={k: d[k] for k in ("_name_or_path",) if isinstance(d.get(k), str)},
    )
    cfg = check_config(cfg, path, family.rope_types)
    return read_family_settings(path, family.adjust_hf_config, cfg, d)


def _family(d: dict, path) -> Family:
    architectures = d.get("architectures") or []
    if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
        raise ModelFileError(path, f"architectures is {show(architectures)}, but must be a list of class names")
    family = family_for_hf(d)
    if family is None:
        found = architectures[0] if architectures else d.get("model_type")
        raise UnsupportedModelError(
            path, f"architecture {show(found)} is not supported; corral runs: {', '.join(family_names())}"
        )
    return family


def _rope(d: dict, path) -> tuple[float, dict | None]:
    """(rope_theta, rope_scaling with "rope_type" set, or None for plain rotary); check_config
    checks the scaling's values."""
    params = d.get("rope_parameters")
    if params is not None and not isinstance(params, dict):
        raise ModelFileError(path, f"rope_parameters is {show(params)}, but must be an object or null")
    params = dict(params or {})
    theta = d.get("rope_theta")
    if theta is None:
        theta = params.get("rope_theta")
    params.pop("rope_theta", None)
    theta = 10000.0 if theta is None else read_float(path, "rope_theta", theta, lo=1.0, hi=MAX_ROPE_THETA)
    scaling = d.get("rope_scaling")
    if scaling is not None and not isinstance(scaling, dict):
        raise ModelFileError(path, f"rope_scaling is {show(scaling)}, but must be an object or null")
    return float(theta), dict(scaling or params) or None


def _eos_ids(v: Any, path) -> tuple[int, ...]:
    if isinstance(v, list):
        if len(v) > 1024:
            raise ModelFileError(path, f"eos_token_id lists {len(v)} ids; the config is corrupt")
        ids = (read_token_id(path, "eos_token_id", x) for x in v)
        return tuple(i for i in ids if i is not None)
    token = read_token_id(path, "eos_token_id", v)
    return () if token is None else (token,)
