"""Mixture-of-experts families: Mixtral, Qwen2-MoE and Qwen3-MoE (HF folders and GGUF).

A Llama-shaped model (Mixtral: Mistral's attention; Qwen2-MoE: qkv bias; Qwen3-MoE: q/k norms)
whose MLP is, in its sparse layers, a router and `num_experts` small gated MLPs:
- the router's softmax over all experts, the top `num_experts_per_tok` kept, renormalised to sum
  to 1 (Mixtral always; Qwen when `norm_topk_prob`);
- Qwen2-MoE adds a shared expert to every token, scaled by sigmoid(shared_expert_gate(x));
- Qwen layers are dense (an ordinary MLP of `intermediate_size`) when listed in `mlp_only_layers`
  or off the `decoder_sparse_step` stride.
Checkpoint names: Mixtral `block_sparse_moe.{gate, experts.E.w1 (gate) / w3 (up) / w2 (down)}`,
Qwen `mlp.{gate, experts.E.{gate,up,down}_proj, shared_expert.*, shared_expert_gate}`.
GGUF, as llama.cpp's converter writes it: the router is `ffn_gate_inp`, a layer's experts are
stacked in 3-D `ffn_{gate,up,down}_exps` tensors that the loader hands over one expert at a time
(quantized slices stay in the file), Qwen2-MoE's shared expert is `ffn_{gate,up,down}_shexp` and
its gate `ffn_gate_inp_shexp` (a vector); `{arch}.expert_count` / `expert_used_count` /
`expert_feed_forward_length` / `expert_shared_feed_forward_length`. Mixtral is written as arch
"llama" (Q/K rows permuted) with an expert count; Qwen2-MoE as "qwen2moe", Qwen3-MoE as
"qwen3moe"; Mixtral files from before llama.cpp stacked experts hold one tensor per expert
(`blk.N.ffn_gate.E.weight`), read the same way (gguf_names.py). llama.cpp renormalises the top-k
weights for llama and qwen3moe, not for qwen2moe, and has every layer sparse.
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
    "ffn_gate_inp_shexp": "mlp.shared_expert_gate",
    "ffn_gate_shexp": "mlp.shared_expert.gate_proj",
    "ffn_up_shexp": "mlp.shared_expert.up_proj",
    "ffn_down_shexp": "mlp.shared_expert.down_proj",
}
MIXTRAL_LAYER_NAMES = {
    **LAYER_NAMES,
    "ffn_gate_inp": "block_sparse_moe.gate",
    "ffn_gate_exps": "block_sparse_moe.experts.{}.w1",
    "ffn_up_exps": "block_sparse_moe.experts.{}.w3",
    "ffn_down_exps": "block_sparse_moe.experts.{}.w2",
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


# More experts a layer than any released model has (Qwen3-Next: 512): a file claiming more is
# refused before lists of its expert weights are built.
MAX_EXPERTS = 4096


def moe_settings(cfg: ModelConfig) -> MoeSettings:
    return cfg.extra["moe"]


class MoeFamily(Family):
    """`gguf_normalizes`: whether llama.cpp renormalises the top-k weights for this GGUF arch."""

    def __init__(self, spec: ArchSpec, mixtral: bool, gguf_normalizes: bool):
        self.spec = spec
        self.mixtral = mixtral
        self.gguf_normalizes = gguf_normalizes
        self.layer_names = MIXTRAL_LAYER_NAMES if mixtral else QWEN_MOE_LAYER_NAMES

    def claims_gguf(self, get) -> bool:
        # llama.cpp writes Mixtral as arch "llama"; only the expert count tells it from Llama
        count = get(f"{self.spec.gguf_arch}.expert_count")
        return not self.mixtral or (isinstance(count, int) and not isinstance(count, bool) and count > 0)

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
        if moe.num_experts or self.mixtral:  # a Qwen config without experts is a dense model
            _check_counts(moe.num_experts, moe.top_k)
        # Qwen configs carry a window size they do not use
        sliding = cfg.sliding_window if self.mixtral or d.get("use_sliding_window") else None
        return replace(cfg, sliding_window=sliding, extra={**cfg.extra, "moe": moe})

    def adjust_gguf_config(self, cfg: ModelConfig, key: MetadataKey, gf) -> ModelConfig:
        experts, top_k = _positive(key("expert_count"), "expert_count"), _positive(key("expert_used_count"),
                                                                                   "expert_used_count")
        _check_counts(experts, top_k)
        router = gf.tensors.get("blk.0.ffn_gate_inp.weight")  # (experts, hidden): the count backed by data
        if router is None or not router.shape or router.shape[0] != experts:
            raise ValueError(f"expert_count {experts} does not match the router blk.0.ffn_gate_inp.weight "
                             f"({'missing' if router is None else router.shape})")
        expert_size = _positive(key("expert_feed_forward_length", cfg.intermediate_size), "expert_feed_forward_length")
        moe = MoeSettings(experts, top_k, self.gguf_normalizes, expert_size,
                          int(key("expert_shared_feed_forward_length", 0)) if not self.mixtral else 0,
                          (True,) * cfg.num_hidden_layers, self.mixtral)
        return replace(cfg, extra={**cfg.extra, "moe": moe})

    def gguf_tensor_to_hf(self, hf_name: str, tensor):
        if hf_name.endswith("shared_expert_gate.weight") and tensor.dim() == 1:
            return tensor[None, :]  # (hidden,) -> HF's (1, hidden)
        return tensor

    def hf_tensor_to_gguf(self, hf_name: str, array):
        # llama.cpp's converter squeezed the shared expert's (1, hidden) gate to a vector, as the
        # Qwen2-MoE files on the Hub hold it (and transformers' GGUF reader expects)
        return array.reshape(-1) if hf_name.endswith("shared_expert_gate.weight") else array

    def write_gguf_metadata(self, writer, cfg: ModelConfig) -> None:
        moe = moe_settings(cfg)
        arch = self.spec.gguf_arch
        if not all(moe.sparse_layers) or moe.normalize_top_k != self.gguf_normalizes or (
                moe.shared_expert_size and self.mixtral):
            from corral.errors import UnsupportedModelError

            norm = "renormalised" if self.gguf_normalizes else "not renormalised"
            raise UnsupportedModelError(cfg.model_type, f"llama.cpp's {arch} has every layer sparse and top-k weights "
                                                        f"{norm}; this model differs and has no GGUF form")
        writer.add_expert_count(moe.num_experts)
        writer.add_expert_used_count(moe.top_k)
        if not self.mixtral:  # Mixtral's experts are feed_forward_length wide
            writer.add_expert_feed_forward_length(moe.expert_size)
        if moe.shared_expert_size:
            writer.add_expert_shared_feed_forward_length(moe.shared_expert_size)

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


def _check_counts(experts: int, top_k: int) -> None:
    if not 0 < top_k <= experts <= MAX_EXPERTS:
        raise ValueError(f"{top_k} experts a token out of {experts} (at most {MAX_EXPERTS}) is not a valid mixture")


def _positive(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


MIXTRAL = MoeFamily(ArchSpec("llama", "MixtralForCausalLM", "mixtral", permuted_qk=True), mixtral=True,
                    gguf_normalizes=True)
QWEN2_MOE = MoeFamily(ArchSpec("qwen2moe", "Qwen2MoeForCausalLM", "qwen2_moe", always_qkv_bias=True), mixtral=False,
                      gguf_normalizes=False)
QWEN3_MOE = MoeFamily(ArchSpec("qwen3moe", "Qwen3MoeForCausalLM", "qwen3_moe", qk_norm=True), mixtral=False,
                      gguf_normalizes=True)
