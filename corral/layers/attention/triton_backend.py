"""The `triton` attention backend: the step's K/V written into the paged cache, then one Triton
kernel launch per layer (triton_kernels.py), decode-only steps through the decode kernel and
every other step through the variable-length prefill kernel. Runs on CUDA, and on the CPU under
TRITON_INTERPRET=1, where the tests check it against the `torch` backend."""
from __future__ import annotations

import torch

from corral.layers.attention.backend import AttentionBackend
from corral.layers.attention.metadata import AttentionMetadata
from corral.layers.attention import triton_kernels


class TritonPagedAttention(AttentionBackend):
    def forward(self, q, k, v, kv_cache, meta: AttentionMetadata, scale: float) -> torch.Tensor:
        num_heads_kv, head_dim = k.shape[1], k.shape[2]
        k_cache = kv_cache[0].view(-1, num_heads_kv, head_dim)  # (num_blocks * block_size, Hk, D)
        v_cache = kv_cache[1].view(-1, num_heads_kv, head_dim)
        k_cache.index_copy_(0, meta.slot_mapping, k.to(k_cache.dtype))
        v_cache.index_copy_(0, meta.slot_mapping, v.to(v_cache.dtype))
        q = q.contiguous()
        if meta.all_decode:
            return triton_kernels.paged_decode(q, kv_cache, meta.block_tables, meta.seq_lens_tensor, scale,
                                               meta.sliding_window, softcap=meta.logit_softcap)
        starts, contexts, longest = prefill_tensors(meta, q.device)
        return triton_kernels.paged_prefill(q, kv_cache, meta.block_tables, starts, contexts, longest, scale,
                                            meta.sliding_window, softcap=meta.logit_softcap)


def prefill_tensors(meta: AttentionMetadata, device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """query_start_loc (B+1,) and context_lens (B,) as int32 tensors on `device`, and the longest
    chunk: built by the first layer of a step and kept in `meta` for the others."""
    if meta.kernel_inputs is None:
        starts = meta.query_start_loc
        both = torch.tensor([starts, [*meta.context_lens, 0]], dtype=torch.int32).to(device)  # one copy
        longest = max(b - a for a, b in zip(starts, starts[1:]))
        meta.kernel_inputs = (both[0], both[1, :-1], longest)
    return meta.kernel_inputs
