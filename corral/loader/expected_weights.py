"""The HF parameter names a config implies, to find a missing tensor before loading starts."""
from __future__ import annotations

from corral.loader.config import ModelConfig


def expected_hf_names(cfg: ModelConfig, family: bool = True) -> list[str]:
    """Every weight the model needs, in HF names (lm_head omitted when tied). A family that
    declares its own names (`corral.loader.family`) answers for its models unless family=False."""
    if family:
        from corral.loader.family import family_for_config

        found = family_for_config(cfg)
        if found is not None:
            return found.expected_hf_names(cfg)
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not cfg.tie_word_embeddings:
        names.append("lm_head.weight")
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        names += [p + f"self_attn.{x}_proj.weight" for x in "qkvo"]
        names += [p + f"mlp.{x}_proj.weight" for x in ("gate", "up", "down")]
        names += [p + "input_layernorm.weight", p + "post_attention_layernorm.weight"]
        if cfg.attention_bias:
            names += [p + f"self_attn.{x}_proj.bias" for x in "qkv"]
        if cfg.qk_norm:
            names += [p + "self_attn.q_norm.weight", p + "self_attn.k_norm.weight"]
    return names
