"""Decoder-only embedding models (Qwen3-Embedding, and Qwen2-shaped ones): a causal transformer
whose last token's hidden state is the embedding; with a `cls.output` head (Qwen3-Reranker's
[yes, no] rows of the LM head), `score` gives that head's logits on the last token.

Plain torch, float32, one forward over a right-padded batch: with a causal mask the padding after
a sequence never reaches its tokens, so the last real token's state is exact. Weights are held
under llama.cpp's GGUF names (qwen2/qwen3 GGUFs keep HF's q/k row order, so no reordering).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from corral.errors import ModelFileError
from corral.models.neox_rotary import apply_rotary, rotary_tables
from corral.loader.config import ModelConfig


class DecoderEncoder(torch.nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.w: dict[str, torch.Tensor] = {}

    def load_weights(self, weights: dict[str, torch.Tensor], source: str) -> None:
        self.w = weights
        need = ["token_embd.weight", "output_norm.weight"]
        for i in range(self.cfg.num_hidden_layers):
            need += [f"blk.{i}.{s}.weight" for s in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                                     "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")]
            if self.cfg.qk_norm:
                need += [f"blk.{i}.attn_q_norm.weight", f"blk.{i}.attn_k_norm.weight"]
        missing = [n for n in need if n not in weights]
        if missing:
            raise ModelFileError(source, f"the model has no tensor {missing[0]!r} ({len(missing)} missing)")

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))

    def _rms(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.rms_norm(x, x.shape[-1:], self.w[name + ".weight"], self.cfg.rms_norm_eps)

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor, mask: torch.Tensor, token_types: torch.Tensor | None = None) -> torch.Tensor:
        """ids, mask: (B, T), padding on the right -> (B, T, H) after the final norm. A decoder has
        no token types; `token_types` is accepted and ignored so pairs run like an encoder's."""
        cfg = self.cfg
        B, T = ids.shape
        nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        x = F.embedding(ids, self.w["token_embd.weight"])  # (B, T, H)
        cos, sin = rotary_tables(T, hd, cfg.rope_theta)
        attn_mask = None  # nothing padded: SDPA's causal kernel
        if not bool(mask.all()):
            causal = torch.ones(T, T, dtype=torch.bool).tril()
            attn_mask = causal[None, None] & mask[:, None, None, :]  # (B, 1, T, T)
            attn_mask = attn_mask | torch.eye(T, dtype=torch.bool)  # padding rows see themselves (no NaN)
        for i in range(cfg.num_hidden_layers):
            p = f"blk.{i}."
            h = self._rms(x, p + "attn_norm")
            q = self._linear(h, p + "attn_q").view(B, T, nh, hd)
            k = self._linear(h, p + "attn_k").view(B, T, nkv, hd)
            v = self._linear(h, p + "attn_v").view(B, T, nkv, hd)
            if cfg.qk_norm:
                q, k = self._rms(q, p + "attn_q_norm"), self._rms(k, p + "attn_k_norm")
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, T, hd)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=attn_mask is None,
                                               enable_gqa=nh != nkv)
            x = x + self._linear(a.transpose(1, 2).reshape(B, T, nh * hd), p + "attn_output")
            h = self._rms(x, p + "ffn_norm")
            x = x + self._linear(F.silu(self._linear(h, p + "ffn_gate")) * self._linear(h, p + "ffn_up"), p + "ffn_down")
        return self._rms(x, "output_norm")


    @property
    def has_classifier(self) -> bool:
        return "cls.output.weight" in self.w

    def score(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, H), mask (B, T) -> (B, num_labels): the classifier on each sequence's last real token."""
        last = hidden[torch.arange(hidden.shape[0]), mask.sum(dim=1) - 1]  # (B, H)
        return self._linear(last, "cls.output")
