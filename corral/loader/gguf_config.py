"""GGUF metadata -> ModelConfig, with the same field values config.json would give."""
from __future__ import annotations

from typing import Any

import numpy as np

from corral.errors import ModelFileError, UnsupportedModelError
from corral.loader.architectures import GGUF_ARCHS
from corral.loader.config import ModelConfig
from corral.loader.family import family_for_gguf, gguf_family_names
from corral.loader.gguf_file import GGUFFile
from corral.loader.rope_llama3 import llama3_scaling_from_factors

# general.file_type -> the dtype the weights are stored in (quantized files compute in float32)
_FILE_TYPE_DTYPES = {0: "float32", 1: "float16", 32: "bfloat16"}


def config_from_gguf(gf: GGUFFile) -> ModelConfig:
    """Read `{arch}.*` hyperparameters, tokenizer special ids and tensor presence from `gf`.

    Raises UnsupportedModelError for an architecture not in `architectures.GGUF_ARCHS` and
    ModelFileError when a required key is missing.
    """
    arch = gf.architecture
    family = family_for_gguf(arch)
    spec = family.spec if family is not None else GGUF_ARCHS.get(arch)
    if spec is None:
        raise UnsupportedModelError(
            gf.path, f"architecture {arch!r} is not supported; corral runs GGUF architectures: {', '.join(sorted([*GGUF_ARCHS, *gguf_family_names()]))}"
        )

    def key(name: str, default: Any = ...) -> Any:
        value = gf.get(f"{arch}.{name}")
        if value is None:
            if default is ...:
                raise ModelFileError(gf.path, f"GGUF metadata key {arch}.{name} is missing; the file is incomplete")
            return default
        return value

    hidden = int(key("embedding_length"))
    heads = int(key("attention.head_count"))
    head_dim = int(key("attention.key_length", hidden // heads))
    rope_theta = _decimal(key("rope.freq_base", 10000.0))
    cfg = ModelConfig(
        architecture=spec.hf_architecture,
        vocab_size=_vocab_size(gf, arch),
        hidden_size=hidden,
        intermediate_size=int(key("feed_forward_length")),
        num_hidden_layers=int(key("block_count")),
        num_attention_heads=heads,
        num_key_value_heads=int(key("attention.head_count_kv", heads)),
        head_dim=head_dim,
        max_position_embeddings=int(key("context_length", 4096)),
        rms_norm_eps=_decimal(key("attention.layer_norm_rms_epsilon", 1e-5)),
        rope_theta=rope_theta,
        rope_scaling=_rope_scaling(gf, arch, head_dim, rope_theta),
        tie_word_embeddings="output.weight" not in gf.tensors,
        attention_bias="blk.0.attn_q.bias" in gf.tensors,
        qk_norm=spec.qk_norm or "blk.0.attn_q_norm.weight" in gf.tensors,
        sliding_window=None,
        hidden_act="silu",
        bos_token_id=_int_or_none(gf.get("tokenizer.ggml.bos_token_id")),
        eos_token_ids=_eos_ids(gf),
        torch_dtype=_FILE_TYPE_DTYPES.get(int(gf.get("general.file_type", 0)), "float32"),
        model_type=spec.model_type,
        extra={"gguf_architecture": arch, "name": gf.get("general.name")},
    )
    return cfg if family is None else family.adjust_gguf_config(cfg, key, gf)


def _vocab_size(gf: GGUFFile, arch: str) -> int:
    size = gf.get(f"{arch}.vocab_size")
    if size is not None:
        return int(size)
    embd = gf.tensors.get("token_embd.weight")
    if embd is not None:
        return int(embd.shape[0])
    tokens = gf.get("tokenizer.ggml.tokens")
    if tokens:
        return len(tokens)
    raise ModelFileError(gf.path, "cannot tell the vocabulary size: no vocab_size key, token_embd.weight or token list")


def _rope_scaling(gf: GGUFFile, arch: str, head_dim: int, rope_theta: float) -> dict | None:
    freqs = gf.tensors.get("rope_freqs.weight")
    if freqs is not None:
        from corral.loader.dequant import dequantize

        factors = dequantize(freqs.type_name, freqs.data, freqs.shape, name=freqs.name, path=str(gf.path))
        return llama3_scaling_from_factors(factors.numpy(), head_dim, rope_theta)
    kind = gf.get(f"{arch}.rope.scaling.type")
    factor = gf.get(f"{arch}.rope.scaling.factor")
    if kind in (None, "none") or not factor:
        return None
    scaling = {"rope_type": str(kind), "factor": _decimal(factor)}
    orig = gf.get(f"{arch}.rope.scaling.original_context_length")
    if orig:
        scaling["original_max_position_embeddings"] = int(orig)
    return scaling


def _eos_ids(gf: GGUFFile) -> tuple[int, ...]:
    """eos first, then end-of-turn / end-of-message ids when the file names different ones."""
    ids: list[int] = []
    for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"):
        v = _int_or_none(gf.get(k))
        if v is not None and v not in ids:
            ids.append(v)
    return tuple(ids)


def _decimal(v: Any) -> float:
    """A float32 metadata value as the shortest decimal that rounds to it (1e-05, not 9.99e-06),
    which is the value config.json held before conversion."""
    return float(str(np.float32(v)))


def _int_or_none(v: Any) -> int | None:
    return None if v is None else int(v)
