"""Hugging Face folder -> llama.cpp-compatible GGUF file (what `convert_hf_to_gguf.py` +
`llama-quantize` would write, for the architectures in `architectures.py`)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from corral.errors import UnsupportedModelError
from corral.loader.config import ModelConfig
from corral.loader.family import family_for_config
from corral.loader.gguf_names import hf_to_gguf, permuted_heads, rotary_row_order
from corral.loader.quant_mix import FILE_TYPES, check_export_type, tensor_type
from corral.loader.quantize import quantize
from corral.loader.rope_llama3 import llama3_freq_factors


def export_gguf(
    hf_dir: str | Path,
    out_path: str | Path,
    weight_type: str = "F16",
    *,
    name: str | None = None,
    with_tokenizer: bool = True,
) -> Path:
    """Write the model in `hf_dir` to `out_path` with 2-D weights as `weight_type`.

    `weight_type` is a GGML type ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
    "Q2_K".."Q6_K") or a llama.cpp mix ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S"); norms and biases
    stay F32; rows that are not whole blocks fall back as llama.cpp does (see quant_mix.py).
    llama-arch (Llama, Mistral) Q/K rows are permuted as llama.cpp's converter does. The
    tokenizer and chat template come from `corral.tokenizer.gguf_vocab`; with_tokenizer=False
    writes only the special token ids from config.json (for folders without tokenizer files).
    Returns out_path.
    """
    import gguf

    from corral.loader.weights import load_model_source

    check_export_type(weight_type)
    hf_dir, out_path = Path(hf_dir), Path(out_path)
    source = load_model_source(hf_dir)
    if source.format != "hf":
        raise UnsupportedModelError(hf_dir, "export_gguf converts a Hugging Face folder; this is already a GGUF file")
    cfg = source.config
    family = family_for_config(cfg)
    if family is None:
        raise UnsupportedModelError(cfg.model_type, f"no GGUF export for model_type {cfg.model_type!r}")
    spec, layer_names = family.spec, family.layer_names
    writer = gguf.GGUFWriter(str(out_path), spec.gguf_arch)
    try:
        _write_metadata(writer, cfg, name or hf_dir.name, weight_type, rope_scaling=not family.writes_rope_scaling)
        family.write_gguf_metadata(writer, cfg)
        if with_tokenizer:
            from corral.tokenizer.gguf_vocab import add_tokenizer_to_gguf

            add_tokenizer_to_gguf(writer, hf_dir)
        else:
            _write_special_ids(writer, cfg)
        if cfg.rope_scaling and cfg.rope_scaling.get("rope_type") == "llama3":
            factors = llama3_freq_factors(cfg.rope_scaling, cfg.head_dim, cfg.rope_theta)
            writer.add_tensor("rope_freqs.weight", factors)
        stacks: dict[str, dict[int, np.ndarray]] = {}  # GGUF name -> expert index -> its weight
        moe = cfg.extra.get("moe")
        n_experts = moe.num_experts if moe is not None else 0
        for hf_name, tensor in source.iter_weights():
            gguf_name = hf_to_gguf(hf_name, layer_names)
            if gguf_name is None:
                continue  # e.g. rotary inv_freq buffers some checkpoints carry
            w = tensor.float().numpy()
            expert = _expert_index(hf_name)
            if expert is not None:  # written as one 3-D tensor per layer once all are read
                slices = stacks.setdefault(gguf_name, {})
                slices[expert] = w
                if len(slices) == n_experts:  # complete: written now, so one layer's experts are in memory, not all
                    del stacks[gguf_name]
                    w = np.stack([slices[i] for i in sorted(slices)])  # (n_experts, rows, cols)
                    _add_tensor(writer, gguf_name, w, tensor_type(gguf_name, w.shape, weight_type, cfg.num_hidden_layers))
                continue
            w = family.hf_tensor_to_gguf(hf_name, w)
            heads = permuted_heads(gguf_name, cfg.num_attention_heads, cfg.num_key_value_heads)
            if spec.permuted_qk and heads:
                w = w[rotary_row_order(w.shape[0], heads, to_hf=False)]
            _add_tensor(writer, gguf_name, w, tensor_type(gguf_name, w.shape, weight_type, cfg.num_hidden_layers))
        for gguf_name, slices in stacks.items():
            w = np.stack([slices[i] for i in sorted(slices)])  # (n_experts, rows, cols)
            _add_tensor(writer, gguf_name, w, tensor_type(gguf_name, w.shape, weight_type, cfg.num_hidden_layers))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return out_path


def _expert_index(hf_name: str) -> int | None:
    m = re.search(r"\.experts\.(\d+)\.", hf_name)
    return None if m is None else int(m.group(1))


def _write_metadata(writer, cfg: ModelConfig, name: str, weight_type: str, rope_scaling: bool = True) -> None:
    import gguf

    writer.add_name(name)
    writer.add_file_type(FILE_TYPES[weight_type])
    if weight_type not in ("F32", "F16", "BF16"):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_key_length(cfg.head_dim)
    writer.add_value_length(cfg.head_dim)
    writer.add_rope_dimension_count(cfg.rotary_dim or cfg.head_dim)
    writer.add_rope_freq_base(cfg.rope_theta)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    scaling = (cfg.rope_scaling or {}) if rope_scaling else {}
    kind = scaling.get("rope_type")
    if kind in ("linear", "yarn"):
        writer.add_rope_scaling_type(gguf.RopeScalingType(kind))
        writer.add_rope_scaling_factor(float(scaling["factor"]))
        if "original_max_position_embeddings" in scaling:
            writer.add_rope_scaling_orig_ctx_len(int(scaling["original_max_position_embeddings"]))
    elif kind not in (None, "llama3"):
        raise UnsupportedModelError(cfg.model_type, f"rope scaling {kind!r} has no GGUF form corral can write")


def _write_special_ids(writer, cfg: ModelConfig) -> None:
    if cfg.bos_token_id is not None:
        writer.add_bos_token_id(cfg.bos_token_id)
    if cfg.eos_token_ids:
        writer.add_eos_token_id(cfg.eos_token_ids[0])


def _add_tensor(writer, name: str, w: np.ndarray, type_name: str) -> None:
    import gguf

    data = quantize(w, type_name)
    if type_name in ("F32", "F16"):
        writer.add_tensor(name, data)
    else:
        writer.add_tensor(name, data, raw_dtype=gguf.GGMLQuantizationType[type_name])
