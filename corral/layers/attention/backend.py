"""The attention backend interface (the backends by name: registry.py)."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from corral.layers.attention.metadata import AttentionMetadata


class AttentionBackend(ABC):
    """Writes this step's keys/values into the paged cache, then attends.

    Rules a backend keeps: the K/V of every query token is stored at its `slot_mapping` slot
    before attention reads the cache; query token j of sequence i (absolute position
    context_lens[i] + j) attends to cache positions 0..that position (causal), minus those older
    than `sliding_window` when set; scores are soft-capped, cap * tanh(score / cap), before the
    softmax when `logit_softcap` is set; heads are grouped (GQA: query head h reads KV head
    h // (Hq // Hk)).
    """

    @abstractmethod
    def forward(
        self,
        q: torch.Tensor,  # (T, Hq, D)
        k: torch.Tensor,  # (T, Hk, D)
        v: torch.Tensor,  # (T, Hk, D)
        kv_cache: torch.Tensor,  # (2, num_blocks, block_size, Hk, D)
        meta: AttentionMetadata,
        scale: float,
    ) -> torch.Tensor:  # (T, Hq, D)
        ...
