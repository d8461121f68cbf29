"""The architectures the loader understands, one table row each.

A row says how a GGUF `general.architecture` maps to the Hugging Face class and `model_type`,
and what differs between families in the files: whether llama.cpp's converter permuted the Q/K
rows for its interleaved rotary layout, whether q/k/v always carry a bias, whether q/k have a
per-head RMSNorm. These rows are the Llama family's; other families (Gemma, Phi-3, MoE) declare
their spec and everything else particular to them in `corral/models/<family>.py` through
`corral.loader.family.Family`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArchSpec:
    gguf_arch: str  # general.architecture in GGUF files
    hf_architecture: str  # config.json "architectures"[0]
    model_type: str  # config.json "model_type"
    permuted_qk: bool = False  # GGUF Q/K rows are in llama.cpp's interleaved-rotary order
    always_qkv_bias: bool = False  # q/k/v projections always have a bias (Qwen2)
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3)


LLAMA = ArchSpec("llama", "LlamaForCausalLM", "llama", permuted_qk=True)
# Mistral is written by llama.cpp as arch "llama"; only the HF side tells them apart.
MISTRAL = ArchSpec("llama", "MistralForCausalLM", "mistral", permuted_qk=True)
QWEN2 = ArchSpec("qwen2", "Qwen2ForCausalLM", "qwen2", always_qkv_bias=True)
QWEN3 = ArchSpec("qwen3", "Qwen3ForCausalLM", "qwen3", qk_norm=True)

# GGUF general.architecture -> spec
GGUF_ARCHS: dict[str, ArchSpec] = {s.gguf_arch: s for s in (LLAMA, QWEN2, QWEN3)}
# config.json "architectures"[0] -> spec
HF_ARCHS: dict[str, ArchSpec] = {s.hf_architecture: s for s in (LLAMA, MISTRAL, QWEN2, QWEN3)}
# config.json "model_type" -> spec (for configs without "architectures")
HF_MODEL_TYPES: dict[str, ArchSpec] = {s.model_type: s for s in (LLAMA, MISTRAL, QWEN2, QWEN3)}
