"""Will a model fit this machine? Weights plus KV cache at a context length, against free memory.

The same numbers the server uses when it loads: the manager counts a model's weights on disk
(`ResolvedModel.size_bytes`) against `--memory-budget` (minus what loaded models hold), else
against what the OS could still give (`kv_cache.available_memory_bytes`); the engine then sizes
the KV cache as 2 (K and V) x layers x KV heads x head size x bytes per value for every token
(`kv_cache.bytes_per_block`), float16 when the weights stay quantized (GGUF quant types), else
float32 (F32/F16/BF16 files and safetensors folders, which load dense).

Verdict: "fits" when the need is at most FIT_SHARE of free memory, "tight" up to all of it,
"too big" beyond; "unknown" when the size is not known.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

FIT_SHARE = 0.8
_DENSE_FILE_TYPES = (None, 0, 1, 32)  # GGUF general.file_type F32, F16, BF16: loaded dense, float32 cache
DENSE_QUANTS = {"F32": 0, "F16": 1, "BF16": 32}  # a repo's file name tag -> that general.file_type


def free_bytes(memory_budget: int | None, used_bytes: int) -> int:
    """Memory a new model may take: the server's budget less loaded models, else MemAvailable."""
    if memory_budget is not None:
        return max(0, memory_budget - used_bytes)
    from corral.engine.kv_cache import available_memory_bytes

    return available_memory_bytes()


def verdict(need_bytes: int | None, free: int) -> str:
    if not need_bytes:
        return "unknown"
    if need_bytes <= FIT_SHARE * free:
        return "fits"
    return "tight" if need_bytes <= free else "too big"


def kv_bytes_per_token(path: Path, kind: str) -> int | None:
    """K and V bytes one token takes in the cache, from GGUF metadata or config.json; None if unknown."""
    try:
        if kind == "gguf":
            return _gguf_kv(path)
        return _hf_kv(path)
    except Exception:  # tolerant: odd metadata only loses the estimate
        return None


def _gguf_kv(path: Path) -> int | None:
    from corral.loader.gguf_file import GGUFFile

    return gguf_kv_from_metadata(GGUFFile(path).metadata)


def gguf_kv_from_metadata(meta: Mapping[str, Any], file_type: Any = "from metadata") -> int | None:
    """K and V bytes per token from GGUF metadata (a whole file's, or the start of a remote one's);
    `file_type` overrides general.file_type (a remote repo's other quantizations share the header)."""
    arch = meta.get("general.architecture")
    layers = meta.get(f"{arch}.block_count")
    heads = meta.get(f"{arch}.attention.head_count")
    kv_heads = meta.get(f"{arch}.attention.head_count_kv", heads)
    head_dim = meta.get(f"{arch}.attention.key_length") or (meta.get(f"{arch}.embedding_length", 0) // (heads or 1))
    if file_type == "from metadata":
        file_type = meta.get("general.file_type")
    itemsize = 4 if file_type in _DENSE_FILE_TYPES else 2  # weights kept quantized: a float16 cache
    if not (layers and kv_heads and head_dim):
        return None
    return 2 * int(layers) * int(kv_heads) * int(head_dim) * itemsize


def _hf_kv(path: Path) -> int | None:
    return hf_kv_from_config(json.loads((path / "config.json").read_text()))


def hf_kv_from_config(config: dict[str, Any]) -> int | None:
    """K and V bytes per token from a config.json's values (a folder loads dense: a float32 cache)."""
    config = config.get("text_config", config) if isinstance(config.get("text_config"), dict) else config
    layers = config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    return 2 * layers * kv_heads * head_dim * 4


def estimate(weights_bytes: int | None, kv_per_token: int | None, context: int, free: int) -> dict[str, Any]:
    """{need, weights, kv, free, fit} in bytes; the KV part is 0 when its size per token is unknown."""
    kv = (kv_per_token or 0) * max(0, context)
    need = (weights_bytes or 0) + kv if weights_bytes else None
    return {"need": need, "weights": weights_bytes, "kv": kv, "kv_known": kv_per_token is not None,
            "free": free, "fit": verdict(need, free)}
