"""The GGML tensor types corral reads and writes, and their block geometry.

A quantized row of n values is n / block_size blocks of type_size bytes each; the layouts of the
blocks are those of ggml-quants.c (see dequant.py for each one spelled out).
"""
from __future__ import annotations

QK_K = 256  # values per K-quant super-block

# name -> (values per block, bytes per block)
BLOCK_GEOMETRY: dict[str, tuple[int, int]] = {
    "F32": (1, 4),
    "F16": (1, 2),
    "BF16": (1, 2),
    "Q8_0": (32, 2 + 32),
    "Q4_0": (32, 2 + 16),
    "Q4_1": (32, 2 + 2 + 16),
    "Q5_0": (32, 2 + 4 + 16),
    "Q5_1": (32, 2 + 2 + 4 + 16),
    "Q2_K": (QK_K, 16 + 64 + 2 + 2),
    "Q3_K": (QK_K, 32 + 64 + 12 + 2),
    "Q4_K": (QK_K, 2 + 2 + 12 + 128),
    "Q5_K": (QK_K, 2 + 2 + 12 + 32 + 128),
    "Q6_K": (QK_K, 128 + 64 + 16 + 2),
    "IQ4_NL": (32, 2 + 16),
    "IQ4_XS": (QK_K, 2 + 2 + 4 + 128),
    "IQ3_XXS": (QK_K, 2 + 64 + 32),
    "IQ3_S": (QK_K, 2 + 64 + 8 + 32 + 4),
    "IQ2_XXS": (QK_K, 2 + 64),
    "IQ2_XS": (QK_K, 2 + 64 + 8),
    "IQ2_S": (QK_K, 2 + 32 + 32 + 8 + 8),
    "IQ1_S": (QK_K, 2 + 32 + 16),
    "IQ1_M": (QK_K, 32 + 16 + 8),
    "TQ1_0": (QK_K, 48 + 4 + 2),
    "TQ2_0": (QK_K, 64 + 2),
}

DENSE_TYPES = ("F32", "F16", "BF16")
QUANTIZED_TYPES = tuple(t for t in BLOCK_GEOMETRY if t not in DENSE_TYPES)
SUPPORTED_TYPES = tuple(BLOCK_GEOMETRY)


def row_bytes(type_name: str, n_values: int) -> int:
    """Bytes taken by one row of `n_values` values; the caller checks `n_values % block_size == 0`."""
    block_size, type_size = BLOCK_GEOMETRY[type_name]
    return n_values // block_size * type_size


# Every type id a GGUF file may hold (ggml.h's `enum ggml_type`): id -> (name, values per block,
# bytes per block). Names are gguf-py's GGMLQuantizationType names; ids 4, 5, 31-33 and 36-38 are
# retired. corral decodes only the types in BLOCK_GEOMETRY; the rest are here so a file that holds
# them is still indexed and then refused with the type's name.
GGML_TYPE_IDS: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
    10: ("Q2_K", QK_K, 84), 11: ("Q3_K", QK_K, 110), 12: ("Q4_K", QK_K, 144), 13: ("Q5_K", QK_K, 176),
    14: ("Q6_K", QK_K, 210), 15: ("Q8_K", QK_K, 292), 16: ("IQ2_XXS", QK_K, 66), 17: ("IQ2_XS", QK_K, 74),
    18: ("IQ3_XXS", QK_K, 98), 19: ("IQ1_S", QK_K, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", QK_K, 110),
    22: ("IQ2_S", QK_K, 82), 23: ("IQ4_XS", QK_K, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", QK_K, 56), 30: ("BF16", 1, 2),
    34: ("TQ1_0", QK_K, 54), 35: ("TQ2_0", QK_K, 66), 39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}
