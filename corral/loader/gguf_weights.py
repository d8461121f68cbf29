"""Weights of a GGUF file in HF names: dequantized tensors or raw quantized blocks."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from corral.errors import ModelFileError, UnsupportedModelError
from corral.loader.config import ModelConfig
from corral.loader.dequant import dequantize
from corral.loader.expected_weights import check_layer_count, check_shapes, expected_hf_names
from corral.loader.ggml_types import BLOCK_GEOMETRY, DENSE_TYPES, SUPPORTED_TYPES
from corral.loader.gguf_file import GGUFFile, GGUFTensor
from corral.loader.family import Family, family_for_gguf
from corral.loader.gguf_names import (NON_WEIGHT_TENSORS, gguf_to_hf, hf_to_gguf, legacy_expert_name,
                                     permuted_heads, rotary_row_order)
from corral.loader.quantized import QuantizedWeight


def check_gguf_tensors(gf: GGUFFile, cfg: ModelConfig) -> None:
    """Raise before loading when a needed tensor is missing, unknown, of an unreadable type, or of
    another shape than the config implies."""
    check_layer_count(cfg, len(gf.tensors), gf.path)
    names = _layer_names(gf)
    for hf in expected_hf_names(cfg):
        name = hf_to_gguf(hf, names)
        if name not in gf.tensors and legacy_expert_name(name, hf) not in gf.tensors:
            raise ModelFileError(gf.path, f"tensor {name!r} ({hf}) is missing; the file is incomplete or not a {cfg.model_type} model")
    for t in gf.tensors.values():
        if t.name not in NON_WEIGHT_TENSORS | _non_weights(gf) and gguf_to_hf(t.name, names) is None:
            raise UnsupportedModelError(gf.path, f"tensor {t.name!r} is not part of any architecture corral runs")
        if t.type_name not in BLOCK_GEOMETRY:
            raise UnsupportedModelError(
                gf.path,
                f"tensor {t.name!r} has type {t.type_name}, which corral cannot read; "
                f"supported: {', '.join(SUPPORTED_TYPES)}. Use a file quantized to one of them (e.g. Q4_K_M or Q8_0).",
            )
    shapes = {hf: t.shape for t in gf.tensors.values() if (hf := gguf_to_hf(t.name)) is not None}
    check_shapes(cfg, shapes, gf.path, file_name=lambda hf: hf_to_gguf(hf) or hf)


def iter_gguf_weights(
    gf: GGUFFile, cfg: ModelConfig, keep_quantized: bool = False
) -> Iterator[tuple[str, torch.Tensor | QuantizedWeight]]:
    """Yield (HF name, weight) in file order, Q/K rows back in HF order for llama-arch files.

    Dense tensors are float32 (F32 ones are copy-on-write views of the file). With
    keep_quantized, quantized 2-D tensors come as QuantizedWeight of (n_out, bytes_per_row) blocks,
    views of the file whose permuted Q/K rows stay in file order (see QuantizedWeight.row_order).
    """
    family = _family(gf)
    permuted = family.spec.permuted_qk
    names = _layer_names(gf)
    for t in gf.tensors.values():
        hf = gguf_to_hf(t.name, names)
        if hf is None:
            continue
        if len(t.shape) == 3:  # a stack of 2-D weights (a layer's experts): one per index
            yield from _stacked(gf, t, hf, keep_quantized)
            continue
        heads = permuted_heads(t.name, cfg.num_attention_heads, cfg.num_key_value_heads) if permuted else None
        order = rotary_row_order(t.shape[0], heads, to_hf=True) if heads else None
        if keep_quantized and t.type_name not in DENSE_TYPES and len(t.shape) == 2:
            yield hf, _quantized(gf, t, order)
            continue
        w = family.gguf_tensor_to_hf(hf, dequantize(t.type_name, t.data, t.shape, name=t.name, path=str(gf.path)))
        yield hf, w if order is None else w[torch.from_numpy(order)]


def _stacked(gf: GGUFFile, t: GGUFTensor, hf_pattern: str, keep_quantized: bool):
    """(hf_pattern.format(i), slice i) of a 3-D tensor (n, rows, cols): quantized slices stay views
    of the file's blocks, so an expert's weights are read only when it runs."""
    n, rows, cols = t.shape
    if keep_quantized and t.type_name not in DENSE_TYPES:
        block_size, type_size = BLOCK_GEOMETRY[t.type_name]
        blocks = np.asarray(t.data).view(np.uint8)
        if cols % block_size or blocks.size != n * rows * (cols // block_size) * type_size:
            raise ModelFileError(gf.path, f"tensor {t.name!r}: data size does not match {t.type_name} {t.shape}")
        blocks = blocks.reshape(n, rows, cols // block_size * type_size)
        for i in range(n):
            yield hf_pattern.format(i), QuantizedWeight(t.type_name, (rows, cols), blocks[i])
        return
    w = dequantize(t.type_name, t.data, t.shape, name=t.name, path=str(gf.path))
    for i in range(n):
        yield hf_pattern.format(i), w[i]


def _family(gf: GGUFFile) -> Family:
    family = family_for_gguf(gf.architecture, gf.get)
    if family is None:  # config_from_gguf refuses such a file first
        raise UnsupportedModelError(gf.path, f"architecture {gf.architecture!r} is not supported")
    return family


def _non_weights(gf: GGUFFile) -> frozenset[str]:
    return _family(gf).non_weight_tensors


def _layer_names(gf: GGUFFile) -> dict[str, str]:
    return _family(gf).layer_names


def _quantized(gf: GGUFFile, t: GGUFTensor, order: np.ndarray | None) -> QuantizedWeight:
    n_out, n_in = t.shape
    blocks = np.asarray(t.data).view(np.uint8)
    block_size, type_size = BLOCK_GEOMETRY[t.type_name]
    if n_in % block_size or blocks.size != n_out * (n_in // block_size) * type_size:
        raise ModelFileError(gf.path, f"tensor {t.name!r}: data size does not match {t.type_name} {t.shape}")
    blocks = blocks.reshape(n_out, n_in // block_size * type_size)
    # A row gather here would copy the weight out of the file; the layer gathers outputs instead.
    return QuantizedWeight(t.type_name, (n_out, n_in), blocks, row_order=order)
