"""Gemma 2 and Gemma 3 (text) models; what differs from Llama is declared in `gemma.py`.

Module names mirror Hugging Face's (`model.layers.3.pre_feedforward_layernorm.weight`). Each layer
norms its attention and MLP outputs again before they join the residual stream (post-norms), and
attends as its `LayerAttention` says: sliding window or global, local or global rotary table.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable

import torch
from torch import nn

from corral.kernels import ops
from corral.layers.embedding import Embedding
from corral.layers.lean_module import LeanModule
from corral.layers.linear import Linear, project_all
from corral.layers.norm import RMSNorm
from corral.layers.rotary import RotaryEmbedding
from corral.loader.config import ModelConfig
from corral.models.forward_batch import ForwardBatch
from corral.models.gemma import LayerAttention, embed_scale, settings
from corral.models.llama import LlamaMLP
from corral.models.llama_decode import FusedDecode, decode_forward, decode_logits
from corral.models.weights import load_named_weights


class GemmaRMSNorm(RMSNorm):
    """RMSNorm scaling by (1 + w), w as HF checkpoints store it; the 1 is added once at load."""

    def load_param(self, name: str, tensor, keep_quantized: bool = False) -> None:
        super().load_param(name, tensor, keep_quantized)
        self.weight = (self.weight + 1.0).contiguous()


class GemmaAttention(LeanModule):
    def __init__(self, cfg: ModelConfig, layer_idx: int, how: LayerAttention):
        super().__init__()
        self.layer_idx, self.how = layer_idx, how
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.q_proj = Linear(cfg.hidden_size, cfg.q_size, bias=cfg.attention_bias)
        self.k_proj = Linear(cfg.hidden_size, cfg.kv_size, bias=cfg.attention_bias)
        self.v_proj = Linear(cfg.hidden_size, cfg.kv_size, bias=cfg.attention_bias)
        self.o_proj = Linear(cfg.q_size, cfg.hidden_size, bias=False)
        self.qk_norm = cfg.qk_norm
        if cfg.qk_norm:  # Gemma 3
            self.q_norm = GemmaRMSNorm(self.head_dim, cfg.rms_norm_eps)
            self.k_norm = GemmaRMSNorm(self.head_dim, cfg.rms_norm_eps)
        self.eps = cfg.rms_norm_eps

    def forward(self, x: torch.Tensor, batch: ForwardBatch, meta, rotary, rows=None) -> torch.Tensor:
        # x: (T, hidden) -> (T, hidden), or (len(rows), hidden)
        t = x.shape[0]
        q = x.new_empty(t, self.num_heads, self.head_dim)  # (T, Hq, D)
        k = x.new_empty(t, self.num_kv_heads, self.head_dim)  # (T, Hk, D)
        v = x.new_empty(t, self.num_kv_heads, self.head_dim)
        project_all(x, [self.q_proj, self.k_proj, self.v_proj], with_bias=False, out=[q, k, v])
        ops.bias_norm_rope_(
            q, k, v, *rotary,
            q_bias=self.q_proj.bias, k_bias=self.k_proj.bias, v_bias=self.v_proj.bias,
            q_norm=self.q_norm.weight if self.qk_norm else None,
            k_norm=self.k_norm.weight if self.qk_norm else None,
            eps=self.eps,
        )
        o = batch.backend.forward(q, k, v, batch.kv_caches[self.layer_idx], meta, self.how.scale)  # (T, Hq, D)
        if rows is not None:
            o = o[rows]
        return self.o_proj(o.flatten(1))


class GemmaDecoderLayer(LeanModule):
    def __init__(self, cfg: ModelConfig, layer_idx: int, how: LayerAttention):
        super().__init__()
        self.how = how
        self.self_attn = GemmaAttention(cfg, layer_idx, how)
        self.mlp = LlamaMLP(cfg)
        eps = cfg.rms_norm_eps
        self.input_layernorm = GemmaRMSNorm(cfg.hidden_size, eps)
        self.post_attention_layernorm = GemmaRMSNorm(cfg.hidden_size, eps)
        self.pre_feedforward_layernorm = GemmaRMSNorm(cfg.hidden_size, eps)
        self.post_feedforward_layernorm = GemmaRMSNorm(cfg.hidden_size, eps)

    def forward(self, x, residual, batch: ForwardBatch, metas: dict, rotaries: dict, rows=None):
        """As LlamaDecoderLayer: x is the previous layer's (post-normed) output not yet added to
        `residual` (None at the first layer, whose x is the scaled embedding)."""
        if residual is None:
            x, residual = self.input_layernorm(x), x
        else:
            x, residual = self.input_layernorm(x, residual)
        key = self.how.sliding_window is not None
        x = self.self_attn(x, batch, metas[key], rotaries[self.how.rope], rows)
        if rows is not None:
            residual = residual[rows]
        x = self.post_attention_layernorm(x)
        x, residual = self.pre_feedforward_layernorm(x, residual)
        return self.post_feedforward_layernorm(self.mlp(x)), residual


class GemmaModel(LeanModule):
    def __init__(self, cfg: ModelConfig, max_positions: int):
        super().__init__()
        gemma = settings(cfg)
        self.layer_attention = gemma.layers()
        self.embed_tokens = Embedding(cfg.vocab_size, cfg.hidden_size)
        self.embed_scale = embed_scale(cfg.hidden_size, gemma.embed_scale_dtype)
        self.rotary = RotaryEmbedding(cfg.head_dim, max_positions, cfg.rope_theta, cfg.rope_scaling)
        if gemma.rope_local_theta is not None:
            self.rotary_local = RotaryEmbedding(cfg.head_dim, max_positions, gemma.rope_local_theta, None)
        self.has_local = gemma.rope_local_theta is not None
        self.layers = nn.ModuleList(GemmaDecoderLayer(cfg, i, how) for i, how in enumerate(self.layer_attention))
        self.norm = GemmaRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.window = gemma.sliding_window
        self.softcap = gemma.attn_logit_softcapping

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        x, residual = self.embed_tokens(batch.input_ids) * self.embed_scale, None  # (T, hidden)
        rotaries = {"global": self.rotary.tables(batch.positions)}
        if self.has_local:
            rotaries["local"] = self.rotary_local.tables(batch.positions)
        # One metadata per kind of layer (what a backend caches on it depends on the window).
        metas = {
            False: replace(batch.attn, sliding_window=None, logit_softcap=self.softcap),
            True: replace(batch.attn, sliding_window=self.window, logit_softcap=self.softcap),
        }
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x, residual = layer(x, residual, batch, metas, rotaries, batch.output_rows if i == last else None)
        return self.norm(x, residual)[0]


class GemmaForCausalLM(LeanModule):
    """forward() gives final hidden states (T, hidden); compute_logits() projects chosen rows."""

    def __init__(self, cfg: ModelConfig, max_positions: int):
        super().__init__()
        self.config = cfg
        self.model = GemmaModel(cfg, max_positions)
        self.lm_head = Linear(cfg.hidden_size, cfg.vocab_size)
        self.final_softcap = settings(cfg).final_logit_softcapping
        self.fused_decode: FusedDecode | bool | None = None  # decode steps in one C call, as Llama's

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        return decode_forward(self, batch)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        # hidden: (N, hidden) -> (N, vocab) float32, soft-capped to (-cap, cap) when the model says
        logits = decode_logits(self, hidden)
        if self.final_softcap:
            logits = torch.tanh(logits / self.final_softcap) * self.final_softcap
        return logits

    def load_weights(self, weights: Iterable, keep_quantized: bool = False) -> None:
        tied = {"lm_head.weight": "model.embed_tokens.weight"} if self.config.tie_word_embeddings else {}
        load_named_weights(self, weights, keep_quantized, tied=tied)
