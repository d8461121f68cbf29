"""Describe a model the way Ollama's /api/show, /api/tags and /api/ps do, from its ModelConfig."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from corral.server import ollama_protocol as ol
from corral.server.model_source import ResolvedModel


def parameter_count(config: Any) -> int:
    """Weights of a decoder-only transformer with a gated MLP (embeddings, layers, norms, head)."""
    h, layers = config.hidden_size, config.num_hidden_layers
    attention = h * (config.q_size + 2 * config.kv_size) + config.q_size * h
    if config.attention_bias:
        attention += config.q_size + 2 * config.kv_size
    mlp = 3 * h * config.intermediate_size
    per_layer = attention + mlp + 2 * h
    embed = config.vocab_size * h
    head = 0 if config.tie_word_embeddings else embed
    return embed + layers * per_layer + h + head


def format_parameter_size(count: int) -> str:
    """Ollama's spelling: "494.03M", "1.24B", "12.5K"."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f}".rstrip("0").rstrip(".") + unit
    return str(count)


def rfc3339(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def details(resolved: ResolvedModel, config: Any | None) -> ol.ModelDetails:
    """From the loaded model's config when there is one, else from what the store recorded."""
    if config is None:
        d = resolved.details
        family = str(d.get("family", ""))
        return ol.ModelDetails(
            format=str(d.get("format", "gguf" if resolved.kind == "gguf" else "safetensors")), family=family,
            families=[family] if family else [], parameter_size=str(d.get("parameter_size", "")),
            quantization_level=str(d.get("quantization_level", "")),
        )
    family = config.model_type
    quant = str(resolved.details.get("quantization_level", ""))
    if not quant:
        quant = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}.get(config.torch_dtype, config.torch_dtype.upper())
    return ol.ModelDetails(
        format="gguf" if resolved.kind == "gguf" else "safetensors",
        family=family,
        families=[family] if family else [],
        parameter_size=format_parameter_size(parameter_count(config)),
        quantization_level=quant,
    )


def model_info(config: Any) -> dict[str, Any]:
    """GGUF-style keys, as Ollama's /api/show returns them."""
    arch = config.model_type
    info = {
        "general.architecture": arch,
        "general.parameter_count": parameter_count(config),
        f"{arch}.context_length": config.max_position_embeddings,
        f"{arch}.embedding_length": config.hidden_size,
        f"{arch}.feed_forward_length": config.intermediate_size,
        f"{arch}.block_count": config.num_hidden_layers,
        f"{arch}.attention.head_count": config.num_attention_heads,
        f"{arch}.attention.head_count_kv": config.num_key_value_heads,
        f"{arch}.attention.key_length": config.head_dim,
        f"{arch}.attention.layer_norm_rms_epsilon": config.rms_norm_eps,
        f"{arch}.rope.freq_base": config.rope_theta,
        f"{arch}.vocab_size": config.vocab_size,
    }
    return info


def parameters_text(options: dict[str, Any]) -> str:
    """Modelfile PARAMETER lines as /api/show's `parameters` text ("stop" once per string)."""
    lines = []
    for key, value in options.items():
        for v in value if isinstance(value, list) else [value]:
            lines.append(f'{key:<30} "{v}"' if isinstance(v, str) else f"{key:<30} {v}")
    return "\n".join(lines)
