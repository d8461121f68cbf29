"""Reference paged attention in plain torch: works on any device, mixed prefill and decode."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from corral.layers.attention.backend import AttentionBackend
from corral.layers.attention.metadata import AttentionMetadata


class TorchPagedAttention(AttentionBackend):
    def forward(self, q, k, v, kv_cache, meta: AttentionMetadata, scale: float) -> torch.Tensor:
        num_heads_kv, head_dim = k.shape[1], k.shape[2]
        k_cache = kv_cache[0].view(-1, num_heads_kv, head_dim)  # (num_blocks * block_size, Hk, D)
        v_cache = kv_cache[1].view(-1, num_heads_kv, head_dim)
        k_cache.index_copy_(0, meta.slot_mapping, k.to(k_cache.dtype))
        v_cache.index_copy_(0, meta.slot_mapping, v.to(v_cache.dtype))
        if meta.all_decode:
            return self._decode(q, kv_cache, meta, scale)
        return self._varlen(q, kv_cache, meta, scale)

    def _decode(self, q, kv_cache, meta: AttentionMetadata, scale: float) -> torch.Tensor:
        # One query token per sequence: two batched matmuls over each sequence's gathered slots.
        num_seqs, num_heads, head_dim = q.shape
        num_heads_kv = kv_cache.shape[3]
        group = num_heads // num_heads_kv
        keys = kv_cache[0].view(-1, num_heads_kv, head_dim)[meta.decode_slots]  # (B, L, Hk, D)
        values = kv_cache[1].view(-1, num_heads_kv, head_dim)[meta.decode_slots]
        q = q.view(num_seqs, num_heads_kv, group, head_dim).to(keys.dtype)  # (B, Hk, G, D)
        scores = torch.matmul(q, keys.permute(0, 2, 3, 1)) * scale  # (B, Hk, G, L)
        if meta.decode_mask is not None:
            scores.masked_fill_(~meta.decode_mask[:, None, None, :], float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, values.transpose(1, 2))  # (B, Hk, G, D)
        return out.reshape(num_seqs, num_heads, head_dim).to(q.dtype)

    def _varlen(self, q, kv_cache, meta: AttentionMetadata, scale: float) -> torch.Tensor:
        bs = meta.block_size
        out = torch.empty_like(q)
        for i in range(meta.num_seqs):
            start, end = meta.query_start_loc[i], meta.query_start_loc[i + 1]
            ctx, seq_len = meta.context_lens[i], meta.seq_lens[i]
            blocks = meta.block_tables[i, : -(-seq_len // bs)]
            keys = kv_cache[0][blocks].flatten(0, 1)[:seq_len]  # (S, Hk, D)
            values = kv_cache[1][blocks].flatten(0, 1)[:seq_len]
            # 4-D inputs (a batch of one) take torch's fused CPU attention kernel; 3-D ones fall
            # back to the unfused math path, about 3x slower on a 512-token prompt.
            qs = q[start:end].transpose(0, 1).to(keys.dtype)[None]  # (1, Hq, n, D)
            ks, vs = keys.transpose(0, 1)[None], values.transpose(0, 1)[None]  # (1, Hk, S, D)
            if ctx == 0 and not meta.sliding_window:  # the whole sequence: plain causal
                o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale, enable_gqa=True)
            else:
                q_pos = torch.arange(ctx, seq_len)[:, None]  # (n, 1) absolute positions of the queries
                k_pos = torch.arange(seq_len)[None, :]  # (1, S)
                mask = k_pos <= q_pos  # (n, S)
                if meta.sliding_window:
                    mask &= k_pos > q_pos - meta.sliding_window
                o = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=scale, enable_gqa=True)
            o = o[0]  # (Hq, n, D)
            out[start:end] = o.transpose(0, 1).to(q.dtype)
        return out
