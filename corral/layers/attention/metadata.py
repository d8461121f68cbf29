"""Per-step description of a varlen batch: which query tokens belong to which sequence and
where each sequence's keys and values live in the paged cache."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AttentionMetadata:
    """Built once per step by the model runner and shared by every layer.

    The batch is B sequences with T query tokens in total, sequence i owning query rows
    query_start_loc[i]:query_start_loc[i+1] at absolute positions
    context_lens[i] .. seq_lens[i]-1.
    """

    block_size: int
    slot_mapping: torch.Tensor  # (T,) int64: cache slot (block * block_size + offset) of each new token
    block_tables: torch.Tensor  # (B, max_blocks) int64, padded with 0
    query_start_loc: list[int]  # B+1 offsets into the T query tokens
    context_lens: list[int]  # (B,) tokens already in the cache before this step
    seq_lens: list[int]  # (B,) tokens in the cache after this step
    seq_lens_tensor: torch.Tensor  # (B,) int64, same as seq_lens
    all_decode: bool  # every sequence has exactly one query token
    sliding_window: int | None = None
    # Scores soft-capped to (-cap, cap) by cap * tanh(score / cap) before the softmax (Gemma 2).
    logit_softcap: float | None = None
    # Decode-only batches on the gathered torch path: cache slot of every (sequence, position) up
    # to the longest sequence, and which of them are attended (None when all are). Left None by the
    # model runner; built once per step by the first layer that needs them (torch_paged.decode_slots).
    decode_slots: torch.Tensor | None = None  # (B, L) int64
    decode_mask: torch.Tensor | None = None  # (B, L) bool
    # Mixed batches through the decode kernel, each query token of the sequences it takes as a
    # sequence of its own: the rows of those tokens, their sequences' block tables and the
    # positions each attends (its position + 1). Built once per step by the first layer that needs
    # them (torch_paged.token_rows).
    kernel_rows: tuple[torch.Tensor | None, torch.Tensor, torch.Tensor] | None = None
    # The Triton prefill kernel's query_start_loc and context_lens on the device, and the longest
    # chunk. Built once per step by the first layer that needs them (triton_backend.prefill_tensors).
    kernel_inputs: tuple[torch.Tensor, torch.Tensor, int] | None = None

    @property
    def num_seqs(self) -> int:
        return len(self.seq_lens)

    @property
    def max_seq_len(self) -> int:
        return max(self.seq_lens)
