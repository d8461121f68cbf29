"""The Llama family's files: Llama 2/3.x, Mistral, Qwen2/2.5 and Qwen3 (the model: `llama.py`).

The layout every other family starts from, so its `Family` declares little beyond its names:
- GGUF: llama.cpp's per-layer names (`corral.loader.gguf_names.LAYER_NAMES`); llama-arch files
  (Llama, Mistral) have their Q/K rows permuted for llama.cpp's interleaved rotary, Qwen's not;
  Llama 3.1's rope scaling comes back from the `rope_freqs` tensor. llama.cpp writes Mistral as
  arch "llama", so a llama-arch file (without experts: those are Mixtral's) is read as Llama;
- config.json: Qwen2 always has q/k/v biases, Qwen3 per-head q/k RMSNorms; Qwen configs carry a
  `sliding_window` they use only with `use_sliding_window`, Mistral's applies to every layer.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from corral.loader.architectures import ArchSpec
from corral.loader.config import ModelConfig
from corral.loader.family import Family


class LlamaFamily(Family):
    """`window_needs_flag`: the config's sliding_window applies only with use_sliding_window (Qwen).
    `claims_files`: GGUF files of its arch are its (False for Mistral: llama.cpp writes it as Llama)."""

    def __init__(self, spec: ArchSpec, window_needs_flag: bool = False, claims_files: bool = True):
        self.spec = spec
        self.window_needs_flag = window_needs_flag
        self.claims_files = claims_files

    def claims_gguf(self, get) -> bool:
        return self.claims_files

    def adjust_hf_config(self, cfg: ModelConfig, d: dict[str, Any]) -> ModelConfig:
        flag = d.get("use_sliding_window")
        if flag is not None and not isinstance(flag, bool):
            raise ValueError(f"use_sliding_window must be true or false, not {flag!r}")
        if self.window_needs_flag and not flag:
            return replace(cfg, sliding_window=None)
        return cfg


LLAMA = LlamaFamily(ArchSpec("llama", "LlamaForCausalLM", "llama", permuted_qk=True))
MISTRAL = LlamaFamily(ArchSpec("llama", "MistralForCausalLM", "mistral", permuted_qk=True), claims_files=False)
QWEN2 = LlamaFamily(ArchSpec("qwen2", "Qwen2ForCausalLM", "qwen2", always_qkv_bias=True), window_needs_flag=True)
QWEN3 = LlamaFamily(ArchSpec("qwen3", "Qwen3ForCausalLM", "qwen3", qk_norm=True), window_needs_flag=True)
