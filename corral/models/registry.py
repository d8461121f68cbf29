"""Architecture name (HF `architectures[0]`) -> model class, imported lazily.

A new family is a model file and a `Family` declaring its file formats (one file when it reuses
another family's model), and a line for each here.
"""
from __future__ import annotations

import importlib

from corral.errors import UnsupportedModelError

ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "corral.models.llama:LlamaForCausalLM",
    "MistralForCausalLM": "corral.models.llama:LlamaForCausalLM",
    "Qwen2ForCausalLM": "corral.models.llama:LlamaForCausalLM",
    "Qwen3ForCausalLM": "corral.models.llama:LlamaForCausalLM",
    "Gemma2ForCausalLM": "corral.models.gemma_model:GemmaForCausalLM",
    "Gemma3ForCausalLM": "corral.models.gemma_model:GemmaForCausalLM",
    "Phi3ForCausalLM": "corral.models.phi3_model:Phi3ForCausalLM",
    "MixtralForCausalLM": "corral.models.moe_model:MoeForCausalLM",
    "Qwen2MoeForCausalLM": "corral.models.moe_model:MoeForCausalLM",
    "Qwen3MoeForCausalLM": "corral.models.moe_model:MoeForCausalLM",
}

# Families declaring their own file formats (`corral.loader.family.Family`), found by the loaders.
FAMILIES: tuple[str, ...] = (
    "corral.models.gemma:GEMMA2",
    "corral.models.gemma:GEMMA3",
    "corral.models.phi3:PHI3",
    "corral.models.moe:MIXTRAL",
    "corral.models.moe:QWEN2_MOE",
    "corral.models.moe:QWEN3_MOE",
    # last: Mixtral claims the llama-arch GGUF files that have experts, Llama the rest
    "corral.models.llama_family:LLAMA",
    "corral.models.llama_family:MISTRAL",
    "corral.models.llama_family:QWEN2",
    "corral.models.llama_family:QWEN3",
)


def model_class(architecture: str, path: str = "model"):
    target = ARCHITECTURES.get(architecture)
    if target is None:
        raise UnsupportedModelError(
            path, f"architecture {architecture!r} is not supported (supported: {', '.join(sorted(ARCHITECTURES))})"
        )
    module_name, _, cls = target.partition(":")
    return getattr(importlib.import_module(module_name), cls)
