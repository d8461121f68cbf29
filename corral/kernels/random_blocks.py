"""Random but valid GGUF blocks of every quantized type, for tests and benchmarks.

Random bytes are valid blocks for every type once the fp16 scale fields hold finite, modest
values: all other bit patterns (quants, packed 6-bit scales, high-bit masks) decode to something.
"""
from __future__ import annotations

import numpy as np

from corral.kernels.qmatmul import _TYPES

# type -> byte offsets of the fp16 fields in a block (scales d and mins m / dmin)
_F16_FIELDS: dict[str, tuple[int, ...]] = {
    "Q4_0": (0,),
    "Q4_1": (0, 2),
    "Q5_0": (0,),
    "Q5_1": (0, 2),
    "Q8_0": (0,),
    "Q2_K": (80, 82),
    "Q3_K": (108,),
    "Q4_K": (0, 2),
    "Q5_K": (0, 2),
    "Q6_K": (208,),
    "IQ4_NL": (0,),
    "IQ4_XS": (0,),
}


def random_blocks(type_name: str, n_rows: int, n_cols: int, rng: np.random.Generator, scale: float = 0.01) -> np.ndarray:
    """uint8 (n_rows, bytes_per_row): random blocks whose fp16 fields are +-scale * U(0.5, 1.5)."""
    _, block, size = _TYPES[type_name]
    if n_cols % block:
        raise ValueError(f"{type_name} rows need a multiple of {block} values, got {n_cols}")
    n_blocks = n_rows * (n_cols // block)
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for off in _F16_FIELDS[type_name]:
        vals = scale * rng.uniform(0.5, 1.5, n_blocks) * rng.choice([-1.0, 1.0], n_blocks)
        raw[:, off : off + 2] = vals.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(n_rows, -1)
