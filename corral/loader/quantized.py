"""A weight kept in its GGUF block format, handed from the loader to quantized linear layers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QuantizedWeight:
    """Raw GGUF blocks of one 2-D weight, exactly as in the file (no copy: a memmap view).

    `shape` is (n_out, n_in) in torch `nn.Linear` order; each of the n_out rows is
    n_in / block_size blocks of `type_name` ("Q4_0", "Q8_0", "Q4_K", ...).
    """

    type_name: str
    shape: tuple[int, int]
    data: np.ndarray  # uint8, (n_out, bytes_per_row)
