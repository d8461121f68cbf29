"""Which GGML type each tensor gets when exporting to a given file type, as llama.cpp chooses.

A plain type ("Q8_0", "Q4_K", ...) applies to every 2-D weight. The `_S`/`_M` mixes spend more
bits where quantization hurts most: the output projection, and attn_v/ffn_down(_exps) in the first and
last eighth of the layers and every third layer between. 1-D tensors (norms, biases) stay F32.
"""
from __future__ import annotations

import re

from corral.errors import ValidationError
from corral.loader.ggml_types import BLOCK_GEOMETRY

# name -> (base type, output.weight type, type for attn_v/ffn_down in "more bits" layers)
MIXES: dict[str, tuple[str, str, str]] = {
    "Q4_K_S": ("Q4_K", "Q6_K", "Q5_K"),
    "Q4_K_M": ("Q4_K", "Q6_K", "Q6_K"),
    "Q5_K_S": ("Q5_K", "Q6_K", "Q5_K"),
    "Q5_K_M": ("Q5_K", "Q6_K", "Q6_K"),
}
# A K-quant needs rows of whole 256-value super-blocks; llama.cpp falls back to these otherwise.
K_FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
# general.file_type (gguf.LlamaFileType) for each export type
FILE_TYPES = {
    "F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10,
    "Q3_K": 11, "Q4_K": 14, "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K": 16, "Q5_K_S": 16, "Q5_K_M": 17,
    "Q6_K": 18, "BF16": 32,
}
EXPORT_TYPES = tuple(FILE_TYPES)

_ROUTER_RE = re.compile(r"^blk\.\d+\.ffn_gate_inp(_shexp)?\.weight$")
# llama.cpp counts every tensor whose name holds "ffn_down" as one, the stacked experts too
_LAYER_RE = re.compile(r"^blk\.(\d+)\.(attn_v|ffn_down(?:_exps)?)\.weight$")


def check_export_type(weight_type: str) -> None:
    if weight_type not in FILE_TYPES:
        raise ValidationError("weight_type", f"unknown type {weight_type!r}; use one of {', '.join(EXPORT_TYPES)}")


def tensor_type(gguf_name: str, shape: tuple[int, ...], weight_type: str, n_layers: int) -> str:
    """The GGML type for tensor `gguf_name` of numpy `shape` in a `weight_type` export."""
    if len(shape) < 2 or _ROUTER_RE.match(gguf_name):  # llama.cpp keeps MoE routers F32 too
        return "F32"
    chosen = weight_type
    if weight_type in MIXES:
        base, output, more = MIXES[weight_type]
        chosen = base
        m = _LAYER_RE.match(gguf_name)
        if gguf_name == "output.weight":
            chosen = output
        elif m and (weight_type.endswith("_M") or m.group(2).startswith("ffn_down")) and _more_bits(int(m.group(1)), n_layers):
            chosen = more
    n_in = shape[-1]
    if n_in % BLOCK_GEOMETRY[chosen][0]:
        chosen = K_FALLBACK.get(chosen, chosen)
        if n_in % BLOCK_GEOMETRY[chosen][0]:
            chosen = "F16"
    return chosen


def _more_bits(layer: int, n_layers: int) -> bool:
    """llama.cpp's use_more_bits: first and last eighth of the layers, and every third between."""
    eighth = n_layers // 8
    return layer < eighth or layer >= 7 * n_layers // 8 or (layer - eighth) % 3 == 2
