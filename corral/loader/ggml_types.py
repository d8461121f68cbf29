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
}

DENSE_TYPES = ("F32", "F16", "BF16")
QUANTIZED_TYPES = tuple(t for t in BLOCK_GEOMETRY if t not in DENSE_TYPES)
SUPPORTED_TYPES = tuple(BLOCK_GEOMETRY)


def row_bytes(type_name: str, n_values: int) -> int:
    """Bytes taken by one row of `n_values` values; the caller checks `n_values % block_size == 0`."""
    block_size, type_size = BLOCK_GEOMETRY[type_name]
    return n_values // block_size * type_size
