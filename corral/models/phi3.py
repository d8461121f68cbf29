"""Phi-3, Phi-3.5 and Phi-4: a Llama-shaped model whose files fuse q/k/v and gate/up.

What sets the family apart, all here:
- checkpoints hold `self_attn.qkv_proj` (rows: q, then k, then v) and `mlp.gate_up_proj` (rows:
  gate, then up); llama.cpp's converter keeps them fused as `attn_qkv` and `ffn_up`. The model
  splits them at load into Llama's q/k/v and gate/up modules (a quantized weight by row ranges,
  still views of the file);
- LongRoPE (`rope_scaling` type "longrope", once "su") with per-frequency short and long factors
  and an attention factor sqrt(1 + ln(max / original) / ln(original)); GGUF stores the factors
  as `rope_factors_short.weight` / `rope_factors_long.weight` and the attention factor and original
  context under `phi3.rope.scaling.*`;
- a sliding window over every layer when the config sets one (Phi-3-mini: 2047);
- partial rotary (Phi-4-mini: `partial_rotary_factor` 0.75, so 96 of a head's 128 dims rotate, and
  LongRoPE's factors cover those 48 frequencies); llama.cpp writes it as `rope.dimension_count`.
The model (Llama's modules, fused tensors split at load) is in `phi3_model.py`.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from corral.loader.architectures import ArchSpec
from corral.loader.config import ModelConfig
from corral.loader.family import Family, MetadataKey
from corral.loader.gguf_names import LAYER_NAMES

PHI3_LAYER_NAMES = {**LAYER_NAMES, "attn_qkv": "self_attn.qkv_proj", "ffn_up": "mlp.gate_up_proj"}
_FACTOR_TENSORS = {"short_factor": "rope_factors_short.weight", "long_factor": "rope_factors_long.weight"}


class Phi3Family(Family):
    spec = ArchSpec("phi3", "Phi3ForCausalLM", "phi3")
    layer_names = PHI3_LAYER_NAMES
    non_weight_tensors = frozenset(_FACTOR_TENSORS.values())
    writes_rope_scaling = True
    rope_types = ("longrope", "su")

    def adjust_hf_config(self, cfg: ModelConfig, d: dict[str, Any]) -> ModelConfig:
        params = d.get("rope_parameters") if isinstance(d.get("rope_parameters"), dict) else {}
        partial = float(d.get("partial_rotary_factor") or params.get("partial_rotary_factor") or 1.0)
        rotary_dim = _rotary_dim(int(cfg.head_dim * partial), cfg.head_dim)  # as transformers rounds it
        scaling = cfg.rope_scaling
        if scaling and scaling.get("rope_type") in ("longrope", "su"):
            scaling = dict(scaling, rope_type="longrope")
            scaling.pop("partial_rotary_factor", None)
            original = scaling.get("original_max_position_embeddings") or d.get("original_max_position_embeddings") or 4096
            scaling["original_max_position_embeddings"] = int(original)
            scaling.setdefault("factor", cfg.max_position_embeddings / int(original))
        return replace(cfg, rope_scaling=scaling, rotary_dim=rotary_dim)

    def adjust_gguf_config(self, cfg: ModelConfig, key: MetadataKey, gf) -> ModelConfig:
        rotary_dim = _rotary_dim(int(key("rope.dimension_count", cfg.head_dim)), cfg.head_dim)
        window = key("attention.sliding_window", None)
        scaling = None
        if all(name in gf.tensors for name in _FACTOR_TENSORS.values()):
            from corral.loader.dequant import dequantize

            original = int(key("rope.scaling.original_context_length", cfg.max_position_embeddings))
            scaling = {"rope_type": "longrope", "original_max_position_embeddings": original,
                       "factor": cfg.max_position_embeddings / original}
            for field, name in _FACTOR_TENSORS.items():
                t = gf.tensors[name]
                values = dequantize(t.type_name, t.data, t.shape, name=name, path=str(gf.path)).numpy()
                scaling[field] = [float(str(v)) for v in values.astype(np.float32)]  # as config.json wrote them
            attn, factor = key("rope.scaling.attn_factor", None), scaling["factor"]
            default = math.sqrt(1 + math.log(factor) / math.log(original)) if factor > 1 else 1.0
            if attn is not None and abs(float(attn) - default) > 1e-6:  # the file's own, not the default
                scaling["attention_factor"] = float(attn)
        return replace(cfg, rope_scaling=scaling or cfg.rope_scaling, sliding_window=int(window) if window else None,
                       rotary_dim=rotary_dim)

    def write_gguf_metadata(self, writer, cfg: ModelConfig) -> None:
        writer.add_sliding_window(cfg.sliding_window or 0)
        scaling = cfg.rope_scaling or {}
        if scaling.get("rope_type") != "longrope":
            return
        original = scaling["original_max_position_embeddings"]
        writer.add_rope_scaling_orig_ctx_len(original)
        factor = cfg.max_position_embeddings / original
        writer.add_rope_scaling_attn_factors(
            scaling.get("attention_factor") or math.sqrt(1 + math.log(factor) / math.log(original)))
        for field, name in _FACTOR_TENSORS.items():
            writer.add_tensor(name, np.asarray(scaling[field], dtype=np.float32))

    def expected_hf_names(self, cfg: ModelConfig) -> list[str]:
        names = ["model.embed_tokens.weight", "model.norm.weight"]
        if not cfg.tie_word_embeddings:
            names.append("lm_head.weight")
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}."
            names += [p + "self_attn.qkv_proj.weight", p + "self_attn.o_proj.weight",
                      p + "mlp.gate_up_proj.weight", p + "mlp.down_proj.weight",
                      p + "input_layernorm.weight", p + "post_attention_layernorm.weight"]
        return names


def _rotary_dim(dims: int, head_dim: int) -> int | None:
    """The rotated dims of a head, None when all are; ValueError unless even and within the head."""
    if dims % 2 or not 2 <= dims <= head_dim:
        raise ValueError(f"a rotary width of {dims} does not fit a head of {head_dim} (it must be even, 2 to {head_dim})")
    return None if dims == head_dim else dims


PHI3 = Phi3Family()
