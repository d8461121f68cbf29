"""Token embedding that can stay quantized: rows are dequantized only when looked up."""
from __future__ import annotations

import torch
from torch import nn

from corral import kernels
from corral.kernels import ops
from corral.layers.lean_module import LeanModule
from corral.loader.quantized import QuantizedWeight


class Embedding(LeanModule):
    def __init__(self, num_embeddings: int, dim: int, dtype=torch.float32):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.dim = dim
        self.dtype = dtype
        self.weight: torch.Tensor | None = None
        self.quantized: QuantizedWeight | None = None
        self.packed: kernels.PackedWeight | None = None  # the same blocks, for the C row lookup

    def load_param(self, name: str, value: torch.Tensor | QuantizedWeight, keep_quantized: bool = False) -> None:
        if isinstance(value, QuantizedWeight):
            if keep_quantized:
                self.quantized = value
                if ops.is_available() and value.type_name in kernels.SUPPORTED_TYPES and value.row_order is None:
                    self.packed = kernels.pack(value, float_activations=value.float_activations)
                return
            value = value.dequantize()
        self.weight = value.to(self.dtype).contiguous()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: (T,) -> (T, dim)
        if self.packed is not None and ids.is_cpu:
            return ops.dequantize_rows(self.packed, ids).to(self.dtype)
        if self.quantized is not None:
            from corral.loader.dequant import dequantize

            ids = ids.cpu().numpy()
            if self.quantized.row_order is not None:
                ids = self.quantized.row_order[ids]
            rows = self.quantized.data[ids]  # (T, bytes_per_row)
            return dequantize(self.quantized.type_name, rows, (len(rows), self.dim)).to(self.dtype)
        return nn.functional.embedding(ids, self.weight)
