"""Mixture-of-experts families: Mixtral, Qwen2-MoE and Qwen3-MoE (HF folders).

A Llama-shaped model (Mixtral: Mistral's attention; Qwen2-MoE: qkv bias; Qwen3-MoE: q/k norms)
whose MLP is, in its sparse layers, a router and `num_experts` small gated MLPs:
- the router's softmax over all experts, the top `num_experts_per_tok` kept, renormalised to sum
  to 1 (Mixtral always; Qwen when `norm_topk_prob`);
- Qwen2-MoE adds a shared expert to every token, scaled by sigmoid(shared_expert_gate(x));
- Qwen layers are dense (an ordinary MLP of `intermediate_size`) when listed in `mlp_only_layers`
  or off the `decoder_sparse_step` stride.
Checkpoint names: Mixtral `block_sparse_moe.{gate, experts.E.w1 (gate) / w3 (up) / w2 (down)}`,
Qwen `mlp.{gate, experts.E.{gate,up,down}_proj, shared_expert.*, shared_expert_gate}`.
GGUF files of these families (experts stacked in 3-D tensors) are not read yet.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from corral.loader.architectures import ArchSpec
from corral.loader.config import ModelConfig
from corral.loader.family import Family


@dataclass(frozen=True)
class MoeSettings:
    """The family's config values beyond ModelConfig's, kept in `ModelConfig.extra["moe"]`."""

    num_experts: int
    top_k: int
    normalize_top_k: bool
    expert_size: int  # each expert's intermediate size
    shared_expert_size: int  # 0: none (Qwen2-MoE has one)
    sparse_layers: tuple[bool, ...]  # per layer: MoE (True) or a dense MLP of intermediate_size
    mixtral_names: bool  # block_sparse_moe / w1 w2 w3 rather than mlp / gate_proj up_proj down_proj


def moe_settings(cfg: ModelConfig) -> MoeSettings:
    return cfg.extra["moe"]


class MoeFamily(Family):
    reads_gguf = False

    def __init__(self, spec: ArchSpec, mixtral: bool):
        self.spec = spec
        self.mixtral = mixtral

    def adjust_hf_config(self, cfg: ModelConfig, d: dict[str, Any]) -> ModelConfig:
        n = cfg.num_hidden_layers
        if self.mixtral:
            moe = MoeSettings(int(d.get("num_local_experts", 8)), int(d.get("num_experts_per_tok", 2)), True,
                              cfg.intermediate_size, 0, (True,) * n, True)
        else:
            dense = set(d.get("mlp_only_layers") or [])
            step = int(d.get("decoder_sparse_step") or 1)
            experts = int(d.get("num_experts") or d.get("num_local_experts") or 0)
            moe = MoeSettings(
                experts, int(d.get("num_experts_per_tok", 1)), bool(d.get("norm_topk_prob", False)),
                int(d.get("moe_intermediate_size") or cfg.intermediate_size),
                int(d.get("shared_expert_intermediate_size") or 0),
                tuple(i not in dense and experts > 0 and (i + 1) % step == 0 for i in range(n)), False,
            )
        # Qwen configs carry a window size they do not use
        sliding = cfg.sliding_window if self.mixtral or d.get("use_sliding_window") else None
        return replace(cfg, sliding_window=sliding, extra={**cfg.extra, "moe": moe})

    def expected_hf_names(self, cfg: ModelConfig) -> list[str]:
        moe = moe_settings(cfg)
        base = Family.expected_hf_names(self, cfg)
        dense_mlp = (".mlp.gate_proj.", ".mlp.up_proj.", ".mlp.down_proj.")
        names = []
        for name in base:
            layer = int(name.split(".")[2]) if name.startswith("model.layers.") else None
            if layer is not None and moe.sparse_layers[layer] and any(p in name for p in dense_mlp):
                continue
            names.append(name)
        for i, sparse in enumerate(moe.sparse_layers):
            if not sparse:
                continue
            block = f"model.layers.{i}." + ("block_sparse_moe" if moe.mixtral_names else "mlp")
            parts = ("w1", "w2", "w3") if moe.mixtral_names else ("gate_proj", "up_proj", "down_proj")
            names.append(f"{block}.gate.weight")
            names += [f"{block}.experts.{e}.{p}.weight" for e in range(moe.num_experts) for p in parts]
            if moe.shared_expert_size:
                names += [f"{block}.shared_expert.{p}.weight" for p in ("gate_proj", "up_proj", "down_proj")]
                names.append(f"{block}.shared_expert_gate.weight")
        return names


MIXTRAL = MoeFamily(ArchSpec("mixtral", "MixtralForCausalLM", "mixtral"), mixtral=True)
QWEN2_MOE = MoeFamily(ArchSpec("qwen2moe", "Qwen2MoeForCausalLM", "qwen2_moe", always_qkv_bias=True), mixtral=False)
QWEN3_MOE = MoeFamily(ArchSpec("qwen3moe", "Qwen3MoeForCausalLM", "qwen3_moe", qk_norm=True), mixtral=False)
