"""What `list` and `show` say about a model: family, parameter count, quantization, context.

Read from GGUF metadata or from config.json and safetensors headers. Tolerant by design: a
field that cannot be read is left out, never an error, so a model with odd metadata still lists.
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any


def gguf_model_info(path: Path) -> dict[str, Any]:
    """architecture, parameter_count, context_length, embedding_length, quantization, chat template."""
    try:
        from corral.loader.gguf_file import GGUFFile

        gguf = GGUFFile(path)
    except Exception:  # tolerant: an unreadable file simply has no details
        return {}
    meta = gguf.metadata
    arch = meta.get("general.architecture")
    info: dict[str, Any] = {"format": "gguf"}
    if isinstance(arch, str):
        info["architecture"] = arch
        for key in ("context_length", "embedding_length", "block_count"):
            if isinstance(meta.get(f"{arch}.{key}"), int):
                info[key] = meta[f"{arch}.{key}"]
    try:
        info["parameter_count"] = sum(math.prod(t.shape) for t in gguf.tensors.values())
    except Exception:
        pass
    quant = _gguf_file_type(meta.get("general.file_type")) or _dominant_tensor_type(gguf)
    if quant:
        info["quantization"] = quant
    if isinstance(meta.get("tokenizer.chat_template"), str):
        info["chat_template"] = meta["tokenizer.chat_template"]
    if isinstance(meta.get("general.license"), str):
        info["license"] = meta["general.license"]
    return info


def hf_model_info(files: dict[str, Path]) -> dict[str, Any]:
    """The same fields for an HF folder, given its files by name."""
    info: dict[str, Any] = {"format": "safetensors"}
    config = _read_json(files.get("config.json"))
    if isinstance(config, dict):
        text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
        archs = config.get("architectures")
        info["architecture"] = config.get("model_type") or (archs[0] if isinstance(archs, list) and archs else None)
        for src, dst in (("max_position_embeddings", "context_length"), ("hidden_size", "embedding_length"),
                         ("num_hidden_layers", "block_count")):
            if isinstance(text.get(src), int):
                info[dst] = text[src]
        if isinstance(config.get("torch_dtype") or config.get("dtype"), str):
            info["quantization"] = _dtype_name(config.get("torch_dtype") or config.get("dtype"))
    count = 0
    for name, path in files.items():
        if name.endswith(".safetensors"):
            count += _safetensors_param_count(path)
    if count:
        info["parameter_count"] = count
    template = _read_json(files.get("tokenizer_config.json"))
    if isinstance(template, dict) and isinstance(template.get("chat_template"), str):
        info["chat_template"] = template["chat_template"]
    if "chat_template.jinja" in files:
        try:
            info["chat_template"] = files["chat_template.jinja"].read_text()
        except (OSError, UnicodeDecodeError):
            pass
    return {k: v for k, v in info.items() if v is not None}


def summary_details(info: dict[str, Any]) -> dict[str, Any]:
    """The Ollama-style `details` kept in a manifest: format, family, parameter_size, quantization_level."""
    details: dict[str, Any] = {"format": info.get("format", "")}
    if info.get("architecture"):
        details["family"] = info["architecture"]
    if info.get("parameter_count"):
        details["parameter_size"] = format_parameter_count(info["parameter_count"])
    if info.get("quantization"):
        details["quantization_level"] = info["quantization"]
    return details


def format_parameter_count(n: int) -> str:
    """494_032_768 -> "494.03M", 7_615_616_512 -> "7.6B"."""
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f}B"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 1_000:
        return f"{n / 1e3:.2f}K"
    return str(n)


def _gguf_file_type(value: Any) -> str | None:
    if not isinstance(value, int):
        return None
    try:
        import gguf

        return gguf.LlamaFileType(value).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except (ImportError, ValueError):
        return None


def _dominant_tensor_type(gguf_file: Any) -> str | None:
    sizes: dict[str, int] = {}
    for t in gguf_file.tensors.values():
        sizes[t.type_name] = sizes.get(t.type_name, 0) + t.n_bytes
    return max(sizes, key=sizes.get) if sizes else None


def _dtype_name(dtype: str) -> str:
    return {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}.get(dtype, dtype.upper())


def _read_json(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _safetensors_param_count(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 100_000_000:
                return 0
            header = json.loads(f.read(length))
        return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return 0
