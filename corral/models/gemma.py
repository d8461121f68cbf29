"""The Gemma 2 and Gemma 3 (text) families: what their files hold and how each layer attends.

What sets them apart from Llama, all declared here (the model is in `gemma_model.py`):
- sliding-window layers interleaved with global ones (Gemma 2: every other layer, the first
  sliding; Gemma 3: five sliding, then one global), the window `sliding_window` tokens including
  the query's own;
- Gemma 3's sliding layers rotate with their own base (10k, unscaled), its global ones with
  `rope_theta` (1M) and `rope_scaling` (linear x8 in the 4B and larger);
- query scaling by `query_pre_attn_scalar ** -0.5` instead of head_dim's, attention-logit
  soft-capping (Gemma 2) and final-logit soft-capping, `tanh(x / cap) * cap`;
- embeddings scaled by sqrt(hidden), rounded to the checkpoint's dtype as transformers does;
- RMSNorms that scale by (1 + w): HF checkpoints store w, llama.cpp's converter writes 1 + w
  (every tensor named "*norm.weight", Gemma 3's q/k norms included). The loaders hand the model
  HF values, so a GGUF norm comes back as stored - 1 and the model adds 1 once at load;
- GELU (tanh form) in the gated MLP, config key `hidden_activation`;
- Gemma 3's multimodal checkpoints (Gemma3ForConditionalGeneration, 4B and up) nest the text
  settings under `text_config` and the weights under `language_model`; the text model runs, the
  vision tower is skipped (images are not supported).

GGUF keys (llama.cpp): `{arch}.attention.sliding_window`, `{arch}.attention.sliding_window_pattern`
(a period, or in newer files one flag a layer), `gemma2.attn_logit_softcapping`,
`{arch}.final_logit_softcapping`, `rope.freq_base` (Gemma 3: the global base). llama.cpp's files
do not store query_pre_attn_scalar: it is head_dim, or hidden / heads in the 27B models (46 layers
for Gemma 2, 62 for Gemma 3), which is what a file without `{arch}.attention.scale` gets here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from corral.loader.architectures import ArchSpec
from corral.loader.config import ModelConfig
from corral.loader.family import Family, MetadataKey
from corral.loader.gguf_names import LAYER_NAMES

# GGUF per-layer stem -> HF module path (llama.cpp's tensor_mapping for gemma2/gemma3): Llama's,
# with norms after attention and around the MLP (llama.cpp's ffn_norm is Gemma's pre-MLP norm).
GEMMA_LAYER_NAMES = {
    **LAYER_NAMES,
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
_LAYER_NORMS = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm")
_27B_LAYERS = {"gemma2": 46, "gemma3": 62}  # llama.cpp tells the 27B models apart by depth


@dataclass(frozen=True)
class LayerAttention:
    """How one layer attends: its window (None: global), rotary table, score scale and soft-cap."""

    sliding_window: int | None
    rope: str  # "local" or "global": which rotary table the layer's q/k turn by
    scale: float
    logit_softcap: float | None


@dataclass(frozen=True)
class GemmaSettings:
    """The family's config values beyond ModelConfig's, kept in `ModelConfig.extra["gemma"]`."""

    sliding_layers: tuple[bool, ...]  # per layer: attends within the window
    sliding_window: int
    query_pre_attn_scalar: float
    attn_logit_softcapping: float | None
    final_logit_softcapping: float | None
    rope_local_theta: float | None  # Gemma 3's sliding layers' base; None: one table for all
    embed_scale_dtype: str  # the dtype sqrt(hidden) is rounded to ("float32" for GGUF files)

    def layers(self) -> list[LayerAttention]:
        scale = self.query_pre_attn_scalar**-0.5
        local = "local" if self.rope_local_theta is not None else "global"
        return [
            LayerAttention(self.sliding_window if s else None, local if s else "global", scale, self.attn_logit_softcapping)
            for s in self.sliding_layers
        ]


def settings(cfg: ModelConfig) -> GemmaSettings:
    return cfg.extra["gemma"]


class GemmaFamily(Family):
    layer_names = GEMMA_LAYER_NAMES

    def __init__(self, spec: ArchSpec, defaults: dict[str, Any], sliding_pattern: int, local_theta: float | None,
                 hf_architectures: tuple[str, ...] = (), model_types: tuple[str, ...] = ()):
        self.spec = spec
        self.defaults = defaults  # transformers' config-class defaults for keys real configs omit
        self.sliding_pattern = sliding_pattern  # every n-th layer is global
        self.local_theta = local_theta
        self.hf_architectures = hf_architectures
        self.model_types = model_types

    # --- config.json
    def hf_text_config(self, d: dict[str, Any]) -> dict[str, Any]:
        text = d.get("text_config")
        if isinstance(text, dict):  # Gemma3ForConditionalGeneration: the text model's keys nest
            outer = {k: d[k] for k in ("bos_token_id", "eos_token_id", "torch_dtype", "dtype", "tie_word_embeddings") if k in d}
            d = {**outer, **text, "architectures": [self.spec.hf_architecture]}
        return {**self.defaults, **d}

    def adjust_hf_config(self, cfg: ModelConfig, d: dict[str, Any]) -> ModelConfig:
        params = d.get("rope_parameters") if isinstance(d.get("rope_parameters"), dict) else {}
        rope_theta, rope_scaling, local_theta = cfg.rope_theta, cfg.rope_scaling, self.local_theta
        if isinstance(params.get("full_attention"), dict):  # transformers 5: per layer type
            full = dict(params["full_attention"])
            rope_theta = float(full.pop("rope_theta", rope_theta))
            rope_scaling = full if full.get("rope_type", "default") != "default" else None
            if local_theta is not None:
                local_theta = float(params.get("sliding_attention", {}).get("rope_theta", local_theta))
        elif local_theta is not None:
            local_theta = float(d.get("rope_local_base_freq") or local_theta)
        layer_types = d.get("layer_types")
        if isinstance(layer_types, list) and len(layer_types) == cfg.num_hidden_layers:
            sliding = tuple(t == "sliding_attention" for t in layer_types)
        else:
            pattern = int(d.get("sliding_window_pattern") or self.sliding_pattern)
            sliding = self._pattern(cfg.num_hidden_layers, pattern)
        gemma = GemmaSettings(
            sliding_layers=sliding,
            sliding_window=int(d["sliding_window"]),
            query_pre_attn_scalar=float(d["query_pre_attn_scalar"]),
            attn_logit_softcapping=_cap(d.get("attn_logit_softcapping")),
            final_logit_softcapping=_cap(d.get("final_logit_softcapping")),
            rope_local_theta=local_theta,
            embed_scale_dtype=cfg.torch_dtype,
        )
        return replace(cfg, rope_theta=rope_theta, rope_scaling=rope_scaling, sliding_window=_every_layer(gemma),
                       hidden_act=str(d.get("hidden_activation") or d.get("hidden_act") or "gelu_pytorch_tanh"),
                       tie_word_embeddings=bool(d.get("tie_word_embeddings", True)), extra={**cfg.extra, "gemma": gemma})

    # --- GGUF
    def adjust_gguf_config(self, cfg: ModelConfig, key: MetadataKey, gf) -> ModelConfig:
        scale = key("attention.scale", None)
        if scale:
            scalar = float(scale) ** -2
        elif cfg.num_hidden_layers == _27B_LAYERS[self.spec.gguf_arch]:
            scalar = cfg.hidden_size / cfg.num_attention_heads
        else:
            scalar = cfg.head_dim
        pattern = key("attention.sliding_window_pattern", self.sliding_pattern)
        if not isinstance(pattern, (int, str)) and hasattr(pattern, "__len__"):  # newer llama.cpp files:
            flags = list(pattern)  # one flag a layer, true for a sliding one
            if len(flags) != cfg.num_hidden_layers or not all(isinstance(f, (bool, np.bool_)) for f in flags):
                raise ValueError(f"attention.sliding_window_pattern holds {len(flags)} values for "
                                 f"{cfg.num_hidden_layers} layers; it needs one true/false a layer")
            sliding = tuple(bool(f) for f in flags)
        else:
            sliding = self._pattern(cfg.num_hidden_layers, int(pattern) if isinstance(pattern, int) and pattern > 0
                                    else self.sliding_pattern)
        gemma = GemmaSettings(
            sliding_layers=sliding,
            sliding_window=int(key("attention.sliding_window", self.defaults["sliding_window"])),
            query_pre_attn_scalar=float(scalar),
            attn_logit_softcapping=_cap(key("attn_logit_softcapping", None)),
            final_logit_softcapping=_cap(key("final_logit_softcapping", None)),
            rope_local_theta=self.local_theta,
            embed_scale_dtype="float32",  # llama.cpp scales by sqrt(n_embd) in float32
        )
        return replace(cfg, sliding_window=_every_layer(gemma), hidden_act="gelu_pytorch_tanh",
                       extra={**cfg.extra, "gemma": gemma})

    def write_gguf_metadata(self, writer, cfg: ModelConfig) -> None:
        gemma = settings(cfg)
        writer.add_sliding_window(gemma.sliding_window)
        if gemma.attn_logit_softcapping is not None:
            writer.add_attn_logit_softcapping(gemma.attn_logit_softcapping)
        if gemma.final_logit_softcapping is not None:
            writer.add_final_logit_softcapping(gemma.final_logit_softcapping)
        if gemma.query_pre_attn_scalar != cfg.head_dim:  # llama.cpp would assume head_dim
            writer.add_attention_scale(gemma.query_pre_attn_scalar**-0.5)

    # --- weights
    def hf_checkpoint_name(self, name: str) -> str | None:
        # Gemma3ForConditionalGeneration: the text model under language_model (transformers 4
        # and the Hub: "language_model.model.*", "language_model.lm_head"; transformers 5 in
        # memory: "model.language_model.*"); the vision tower and projector are not run here.
        for prefix, to in (("language_model.model.", "model."), ("model.language_model.", "model."),
                           ("language_model.lm_head.", "lm_head.")):
            if name.startswith(prefix):
                return to + name[len(prefix):]
        if name.startswith(("vision_tower.", "multi_modal_projector.", "model.vision_tower.",
                            "model.multi_modal_projector.")):
            return None
        return name

    def expected_hf_names(self, cfg: ModelConfig) -> list[str]:
        names = ["model.embed_tokens.weight", "model.norm.weight"]
        if not cfg.tie_word_embeddings:
            names.append("lm_head.weight")
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}."
            names += [p + f"self_attn.{x}_proj.weight" for x in "qkvo"]
            names += [p + f"mlp.{x}_proj.weight" for x in ("gate", "up", "down")]
            names += [p + f"{n}.weight" for n in _LAYER_NORMS]
            if cfg.qk_norm:
                names += [p + "self_attn.q_norm.weight", p + "self_attn.k_norm.weight"]
        return names

    def gguf_tensor_to_hf(self, hf_name: str, tensor):
        return tensor - 1.0 if hf_name.endswith("norm.weight") else tensor

    def hf_tensor_to_gguf(self, hf_name: str, array):
        return array + 1.0 if hf_name.endswith("norm.weight") else array

    @staticmethod
    def _pattern(n_layers: int, pattern: int) -> tuple[bool, ...]:
        # transformers and llama.cpp alike: layer i is global when (i + 1) % pattern == 0
        return tuple(bool((i + 1) % pattern) for i in range(n_layers))


def _every_layer(gemma: GemmaSettings) -> int | None:
    """ModelConfig.sliding_window: the window when every layer has it (then the KV blocks behind it
    are released), None when any layer attends globally."""
    return gemma.sliding_window if all(gemma.sliding_layers) else None


def _cap(v: Any) -> float | None:
    return float(v) if v else None


def embed_scale(hidden_size: int, dtype_name: str) -> float:
    """sqrt(hidden) as transformers multiplies it: a tensor of the embedding's dtype."""
    import torch

    dtype = getattr(torch, dtype_name, torch.float32)
    return float(torch.tensor(math.sqrt(hidden_size), dtype=dtype if dtype.is_floating_point else torch.float32))


_COMMON_DEFAULTS = dict(head_dim=256, num_attention_heads=8, num_key_value_heads=4, rms_norm_eps=1e-6,
                        query_pre_attn_scalar=256, sliding_window=4096, hidden_activation="gelu_pytorch_tanh",
                        tie_word_embeddings=True)

GEMMA2 = GemmaFamily(
    ArchSpec("gemma2", "Gemma2ForCausalLM", "gemma2"),
    {**_COMMON_DEFAULTS, "vocab_size": 256000, "max_position_embeddings": 8192, "rope_theta": 10000.0,
     "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0},
    sliding_pattern=2, local_theta=None,
)
GEMMA3 = GemmaFamily(
    ArchSpec("gemma3", "Gemma3ForCausalLM", "gemma3_text", qk_norm=True),
    {**_COMMON_DEFAULTS, "vocab_size": 262208, "max_position_embeddings": 131072, "rope_theta": 1_000_000.0},
    sliding_pattern=6, local_theta=10000.0,
    hf_architectures=("Gemma3ForConditionalGeneration",), model_types=("gemma3",),
)
