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
GGUF (llama.cpp's qwen3moe): the router is `ffn_gate_inp`, a layer's experts are stacked in 3-D
`ffn_{gate,up,down}_exps` tensors that the loader hands over one expert at a time (quantized slices
stay in the file), `{arch}.expert_count` / `expert_used_count` / `expert_feed_forward_length`; top-k
weights are renormalised, as llama.cpp does for this architecture. Mixtral (which llama.cpp
writes as arch "llama") and Qwen2-MoE GGUF files are not read yet.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from corral.loader.architectures import ArchSpec
from corral.loader.config import ModelConfig
from corral.loader.family import Family, MetadataKey
from corral.loader.gguf_names import LAYER_NAMES

QWEN_MOE_LAYER_NAMES = {
    **LAYER_NAMES,
    "ffn_gate_inp": "mlp.gate",
    "ffn_gate_exps": "mlp.experts.{}.gate_proj",
    "ffn_up_exps": "mlp.experts.{}.up_proj",
    "ffn_down_exps": "mlp.experts.{}.down_proj",
}


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
    def __init__(self, spec: ArchSpec, mixtral: bool, reads_gguf: bool = False):
        self.spec = spec
        self.mixtral = mixtral
        self.reads_gguf = reads_gguf
        if reads_gguf:
            self.layer_names = QWEN_MOE_LAYER_NAMES

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

    def adjust_gguf_config(self, cfg: ModelConfig, key: MetadataKey, gf) -> ModelConfig:
        experts = int(key("expert_count"))
        moe = MoeSettings(experts, int(key("expert_used_count")), True,
                          int(key("expert_feed_forward_length", cfg.intermediate_size)), 0,
                          (experts > 0,) * cfg.num_hidden_layers, False)
        return replace(cfg, extra={**cfg.extra, "moe": moe})

    def write_gguf_metadata(self, writer, cfg: ModelConfig) -> None:
        moe = moe_settings(cfg)
        if not all(moe.sparse_layers) or moe.shared_expert_size or not moe.normalize_top_k:
            from corral.errors import UnsupportedModelError

            raise UnsupportedModelError(cfg.model_type, "llama.cpp's qwen3moe has every layer sparse, no shared "
                                                        "expert and renormalised top-k; this model differs")
        writer.add_expert_count(moe.num_experts)
        writer.add_expert_used_count(moe.top_k)
        writer.add_expert_feed_forward_length(moe.expert_size)

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
QWEN3_MOE = MoeFamily(ArchSpec("qwen3moe", "Qwen3MoeForCausalLM", "qwen3_moe", qk_norm=True), mixtral=False,
                      reads_gguf=True)
