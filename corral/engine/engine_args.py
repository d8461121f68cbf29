"""Everything that shapes an engine, fixed when it starts."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineArgs:
    model: str
    max_model_len: int | None = None  # default: the model's context, capped at DEFAULT_MAX_LEN_CAP
    block_size: int = 16
    kv_cache_memory: int | None = None  # bytes for the KV cache; default a share of free memory
    # "auto": float16 when the weights stay quantized (as llama.cpp and Ollama keep the cache: its
    # rounding is far below the weights'), else the activations' float32; or "float32" / "float16"
    kv_cache_dtype: str = "auto"
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 1024
    enable_prefix_caching: bool = True
    # keep GGUF blocks quantized when the CPU kernels support them; None: the model's choice, which
    # keeps them quantized, in float32 activations for a model that asks for them
    # (corral.store.default_model.prefers_float_activations); True: the int8-activation kernels
    keep_quantized: bool | None = None
    num_threads: int | None = None
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:N"
    dtype: str = "auto"  # weights and activations: "auto" (CPU float32, GPU bfloat16), "bfloat16", "float16", "float32"
    attention_backend: str = "auto"  # "auto", "cpu", "torch", "triton" (layers/attention/registry.py)
    gpu_memory_utilization: float = 0.9  # on CUDA: share of the device's memory weights + KV cache may fill
    enforce_eager: bool = False  # on CUDA: no CUDA graphs for decode steps
    seed: int = 0  # base for requests without a seed

    DEFAULT_MAX_LEN_CAP = 8192
    KV_CACHE_DTYPES = ("auto", "float32", "float16", "bfloat16")
