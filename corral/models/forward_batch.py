"""Everything one forward pass needs besides the weights, passed explicitly (no globals)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from corral.layers.attention import AttentionBackend, AttentionMetadata


@dataclass
class ForwardBatch:
    input_ids: torch.Tensor  # (T,) int64
    positions: torch.Tensor  # (T,) int64 absolute positions
    attn: AttentionMetadata
    kv_caches: list[torch.Tensor]  # per layer: (2, num_blocks, block_size, Hk, D)
    backend: AttentionBackend
    rotary: tuple[torch.Tensor, torch.Tensor] | None = None  # cos, sin (T, D), set by the model
    # (N,) int64: the tokens whose hidden states the caller reads (those that sample); None: all.
    # The last layer computes its output projection and MLP for these rows only.
    output_rows: torch.Tensor | None = None
