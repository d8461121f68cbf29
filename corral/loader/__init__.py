"""Model files in, config and HF-named weights out (GGUF files and Hugging Face folders).

    source = load_model_source(path)       # .gguf file or HF folder
    source.config                          # ModelConfig
    for name, w in source.iter_weights():  # "model.layers.0.self_attn.q_proj.weight", tensor
        ...

Names resolve lazily so importing `corral.loader.config` stays free of torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "ModelSource": "corral.loader.weights",
    "load_model_source": "corral.loader.weights",
    "ModelConfig": "corral.loader.config",
    "config_from_gguf": "corral.loader.gguf_config",
    "config_from_hf": "corral.loader.hf_config",
    "dequantize": "corral.loader.dequant",
    "quantize": "corral.loader.quantize",
    "export_gguf": "corral.loader.gguf_export",
    "GGUFFile": "corral.loader.gguf_file",
    "QuantizedWeight": "corral.loader.quantized",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'corral.loader' has no attribute {name!r}")
