"""A weight kept in its GGUF block format, handed from the loader to quantized linear layers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class QuantizedWeight:
    """Raw GGUF blocks of one 2-D weight, exactly as in the file (no copy: a memmap view).

    `shape` is (n_out, n_in) in torch `nn.Linear` order; each of the n_out rows is
    n_in / block_size blocks of `type_name` ("Q4_0", "Q8_0", "Q4_K", ...). Rows stay in file
    order: where that differs from the model's (llama.cpp's Q/K permutation), output i of the
    weight is row `row_order[i]`, so a layer gathers its outputs rather than copying the rows.
    """

    type_name: str
    shape: tuple[int, int]
    data: np.ndarray  # uint8, (n_out, bytes_per_row)
    row_order: np.ndarray | None = None  # (n_out,) int64, None when rows are in output order
    # Kernels keep the activations in float32 for this weight (see corral.kernels.pack)
    float_activations: bool = False

    def dequantize(self) -> "torch.Tensor":
        """The weight as a dense float32 (n_out, n_in) tensor, rows in output order."""
        import torch

        from corral.loader.dequant import dequantize

        w = dequantize(self.type_name, self.data, self.shape)
        return w if self.row_order is None else w[torch.from_numpy(self.row_order)]
