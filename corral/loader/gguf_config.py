"""GGUF metadata -> ModelConfig, with the same field values config.json would give."""
from __future__ import annotations

from typing import Any

import numpy as np

from corral.errors import ModelFileError, UnsupportedModelError
from corral.loader.config import ModelConfig
from corral.loader.config_checks import MAX_ROPE_THETA, check_config
from corral.loader.config_values import read_float, read_int, read_str, read_token_id
from corral.loader.family import family_for_gguf, gguf_family_names, read_family_settings
from corral.loader.gguf_file import GGUFFile
from corral.loader.rope_llama3 import llama3_scaling_from_factors

# general.file_type -> the dtype the weights are stored in (quantized files compute in float32)
_FILE_TYPE_DTYPES = {0: "float32", 1: "float16", 32: "bfloat16"}


def config_from_gguf(gf: GGUFFile) -> ModelConfig:
    """Read `{arch}.*` hyperparameters, tokenizer special ids and tensor presence from `gf`.

    Every value is checked for type and range (config_values, config_checks) before use. Raises
    UnsupportedModelError for an architecture no family reads and ModelFileError
    when a required key is missing or a value is of the wrong type or out of range.
    """
    arch = gf.architecture
    family = family_for_gguf(arch, gf.get)
    if family is None:
        raise UnsupportedModelError(
            gf.path, f"architecture {arch!r} is not supported; corral runs GGUF architectures: {', '.join(gguf_family_names())}"
        )
    spec = family.spec

    path = gf.path

    def raw(name: str, default: Any = ...) -> Any:
        value = gf.get(f"{arch}.{name}")
        if value is None:
            if default is ...:
                raise ModelFileError(path, f"GGUF metadata key {arch}.{name} is missing; the file is incomplete")
            return default
        return value

    def integer(name: str, default: Any = ...) -> int:
        return read_int(path, f"{arch}.{name}", raw(name, default))

    def decimal(name: str, default: float, lo: float, hi: float) -> float:
        return _decimal(read_float(path, f"{arch}.{name}", raw(name, default), lo=lo, hi=hi))

    hidden = integer("embedding_length")
    heads = integer("attention.head_count")
    if gf.get(f"{arch}.attention.key_length") is None and hidden % heads:
        raise ModelFileError(path, f"an embedding length of {hidden} does not split into {heads} heads, and "
                                   f"{arch}.attention.key_length is missing; the file is corrupt")
    head_dim = integer("attention.key_length", hidden // heads)
    if head_dim % 2:
        raise ModelFileError(path, f"the head width {head_dim} is odd; rotary embeddings need an even one")
    rope_theta = decimal("rope.freq_base", 10000.0, lo=1.0, hi=MAX_ROPE_THETA)
    name = gf.get("general.name")
    cfg = ModelConfig(
        architecture=spec.hf_architecture,
        vocab_size=_vocab_size(gf, arch),
        hidden_size=hidden,
        intermediate_size=integer("feed_forward_length"),
        num_hidden_layers=integer("block_count"),
        num_attention_heads=heads,
        num_key_value_heads=integer("attention.head_count_kv", heads),
        head_dim=head_dim,
        max_position_embeddings=integer("context_length", 4096),
        rms_norm_eps=decimal("attention.layer_norm_rms_epsilon", 1e-5, lo=0.0, hi=1.0),
        rope_theta=rope_theta,
        rope_scaling=_rope_scaling(gf, arch, head_dim, rope_theta),
        tie_word_embeddings="output.weight" not in gf.tensors,
        attention_bias="blk.0.attn_q.bias" in gf.tensors,
        qk_norm=spec.qk_norm or "blk.0.attn_q_norm.weight" in gf.tensors,
        sliding_window=None,
        hidden_act="silu",
        bos_token_id=read_token_id(path, "tokenizer.ggml.bos_token_id", gf.get("tokenizer.ggml.bos_token_id")),
        eos_token_ids=_eos_ids(gf),
        torch_dtype=_FILE_TYPE_DTYPES.get(read_int(path, "general.file_type", gf.get("general.file_type", 0), lo=0),
                                          "float32"),
        model_type=spec.model_type,
        extra={"gguf_architecture": arch, "name": name if isinstance(name, str) else None},
    )
    cfg = check_config(cfg, path, family.rope_types)
    return read_family_settings(path, family.adjust_gguf_config, cfg, raw, gf)


def _vocab_size(gf: GGUFFile, arch: str) -> int:
    size = gf.get(f"{arch}.vocab_size")
    if size is not None:
        return read_int(gf.path, f"{arch}.vocab_size", size)
    embd = gf.tensors.get("token_embd.weight")
    if embd is not None and embd.shape:
        return read_int(gf.path, "the rows of token_embd.weight", embd.shape[0])
    tokens = gf.get("tokenizer.ggml.tokens")
    if isinstance(tokens, list) and tokens:
        return len(tokens)
    raise ModelFileError(gf.path, "cannot tell the vocabulary size: no vocab_size key, token_embd.weight or token list")


def _rope_scaling(gf: GGUFFile, arch: str, head_dim: int, rope_theta: float) -> dict | None:
    freqs = gf.tensors.get("rope_freqs.weight")
    if freqs is not None:
        from corral.loader.dequant import dequantize

        if freqs.shape != (head_dim // 2,):
            raise ModelFileError(gf.path, f"tensor 'rope_freqs.weight' has shape {freqs.shape}, but a head of "
                                          f"{head_dim} needs ({head_dim // 2},); the file is corrupt")

        factors = dequantize(freqs.type_name, freqs.data, freqs.shape, name=freqs.name, path=str(gf.path))
        return llama3_scaling_from_factors(factors.numpy(), head_dim, rope_theta)
    kind = gf.get(f"{arch}.rope.scaling.type")
    factor = gf.get(f"{arch}.rope.scaling.factor")
    if kind is None or (isinstance(kind, str) and kind == "none"):
        return None
    if factor is None or (isinstance(factor, (int, float)) and factor == 0):
        return None
    scaling = {"rope_type": read_str(gf.path, f"{arch}.rope.scaling.type", kind, max_len=32),
               "factor": _decimal(read_float(gf.path, f"{arch}.rope.scaling.factor", factor, hi=1e6))}
    orig = gf.get(f"{arch}.rope.scaling.original_context_length")
    if orig is not None and not (isinstance(orig, int) and orig == 0):
        scaling["original_max_position_embeddings"] = read_int(
            gf.path, f"{arch}.rope.scaling.original_context_length", orig)
    return scaling


def _eos_ids(gf: GGUFFile) -> tuple[int, ...]:
    """eos first, then end-of-turn / end-of-message ids when the file names different ones."""
    ids: list[int] = []
    for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"):
        v = read_token_id(gf.path, k, gf.get(k))
        if v is not None and v not in ids:
            ids.append(v)
    return tuple(ids)


def _decimal(v: Any) -> float:
    """A float32 metadata value as the shortest decimal that rounds to it (1e-05, not 9.99e-06),
    which is the value config.json held before conversion."""
    return float(str(np.float32(v)))

