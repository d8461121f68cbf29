"""The Llama family: Llama 2/3.x, Mistral, Qwen2/2.5 (qkv bias) and Qwen3 (q/k RMSNorm).

Module names mirror Hugging Face's so checkpoint names map onto modules one to one
(`model.layers.3.self_attn.q_proj.weight`); GGUF names are translated by the loader.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from corral.kernels import ops
from corral.layers.activation import gated
from corral.layers.embedding import Embedding
from corral.layers.lean_module import LeanModule
from corral.layers.linear import Linear, project_all
from corral.layers.norm import RMSNorm
from corral.layers.rotary import RotaryEmbedding
from corral.loader.config import ModelConfig
from corral.models.forward_batch import ForwardBatch
from corral.models.llama_decode import FusedDecode, decode_forward, decode_logits
from corral.models.weights import load_named_weights


class LlamaAttention(LeanModule):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.scale = self.head_dim**-0.5
        self.q_proj = Linear(cfg.hidden_size, cfg.q_size, bias=cfg.attention_bias)
        self.k_proj = Linear(cfg.hidden_size, cfg.kv_size, bias=cfg.attention_bias)
        self.v_proj = Linear(cfg.hidden_size, cfg.kv_size, bias=cfg.attention_bias)
        self.o_proj = Linear(cfg.q_size, cfg.hidden_size, bias=False)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps)
        self.qk_norm = cfg.qk_norm
        self.eps = cfg.rms_norm_eps
        self.rotary_dim = cfg.rotary_dim  # None: every dim of a head rotates

    def forward(self, x: torch.Tensor, batch: ForwardBatch, rows: torch.Tensor | None = None) -> torch.Tensor:
        # x: (T, hidden) -> (T, hidden), or (len(rows), hidden): every token's K/V reach the cache,
        # the output projection runs for `rows` only.
        t = x.shape[0]
        q = x.new_empty(t, self.num_heads, self.head_dim)  # (T, Hq, D)
        k = x.new_empty(t, self.num_kv_heads, self.head_dim)  # (T, Hk, D)
        v = x.new_empty(t, self.num_kv_heads, self.head_dim)
        project_all(x, [self.q_proj, self.k_proj, self.v_proj], with_bias=False, out=[q, k, v])
        # Biases (Qwen2), per-head q/k RMSNorm (Qwen3) and rotary, in place and in one pass.
        partial = self.rotary_dim is not None
        ops.bias_norm_rope_(
            q, k, v, *((None, None) if partial else batch.rotary),
            q_bias=self.q_proj.bias, k_bias=self.k_proj.bias, v_bias=self.v_proj.bias,
            q_norm=self.q_norm.weight if self.qk_norm else None,
            k_norm=self.k_norm.weight if self.qk_norm else None,
            eps=self.eps,
        )
        if partial:  # only each head's first rotary_dim rotate (tables (T, rotary_dim)); the rest pass
            ops.bias_norm_rope_(q[..., :self.rotary_dim], k[..., :self.rotary_dim], None, *batch.rotary)
        o = batch.backend.forward(q, k, v, batch.kv_caches[self.layer_idx], batch.attn, self.scale)  # (T, Hq, D)
        if rows is not None:
            o = o[rows]  # (N, Hq, D)
        return self.o_proj(o.flatten(1))


class LlamaMLP(LeanModule):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.act = cfg.hidden_act
        self.gate_proj = Linear(cfg.hidden_size, cfg.intermediate_size)
        self.up_proj = Linear(cfg.hidden_size, cfg.intermediate_size)
        self.down_proj = Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = project_all(x, [self.gate_proj, self.up_proj])  # (T, intermediate) each
        return self.down_proj(gated(self.act, gate, up, out=gate))


class LlamaDecoderLayer(LeanModule):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.self_attn = LlamaAttention(cfg, layer_idx)
        self.mlp = LlamaMLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None, batch: ForwardBatch,
                rows: torch.Tensor | None = None):
        """x (T, hidden): the previous layer's output, not yet added to `residual`, the running sum
        of the outputs before it (None at the first layer, whose x is the embedding itself).
        Returns (output, residual) in the same form: each add happens inside the next norm. With
        `rows` (the last layer), both come back for those tokens only."""
        if residual is None:
            x, residual = self.input_layernorm(x), x
        else:
            x, residual = self.input_layernorm(x, residual)
        x = self.self_attn(x, batch, rows)
        if rows is not None:
            residual = residual[rows]
        x, residual = self.post_attention_layernorm(x, residual)
        return self.mlp(x), residual


class LlamaModel(LeanModule):
    def __init__(self, cfg: ModelConfig, max_positions: int):
        super().__init__()
        self.embed_tokens = Embedding(cfg.vocab_size, cfg.hidden_size)
        self.rotary = RotaryEmbedding(cfg.rotary_dim or cfg.head_dim, max_positions, cfg.rope_theta, cfg.rope_scaling)
        self.layers = nn.ModuleList(LlamaDecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        """Final hidden states (T, hidden), or (N, hidden) of `batch.output_rows`."""
        x, residual = self.embed_tokens(batch.input_ids), None  # (T, hidden)
        batch.rotary = self.rotary.tables(batch.positions)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x, residual = layer(x, residual, batch, batch.output_rows if i == last else None)
        return self.norm(x) if residual is None else self.norm(x, residual)[0]


class LlamaForCausalLM(LeanModule):
    """forward() gives final hidden states (T, hidden); compute_logits() projects chosen rows."""

    def __init__(self, cfg: ModelConfig, max_positions: int):
        super().__init__()
        self.config = cfg
        self.model = LlamaModel(cfg, max_positions)
        self.lm_head = Linear(cfg.hidden_size, cfg.vocab_size)
        # Decode steps in one C call, layers and output projection (llama_decode.py): None until
        # the first forward, after the weights are loaded; False where the model is not what it
        # runs (or to turn it off).
        self.fused_decode: FusedDecode | bool | None = None

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        return decode_forward(self, batch)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        # hidden: (N, hidden) -> (N, vocab) float32
        return decode_logits(self, hidden)

    def load_weights(self, weights: Iterable, keep_quantized: bool = False) -> None:
        tied = {"lm_head.weight": "model.embed_tokens.weight"} if self.config.tie_word_embeddings else {}
        load_named_weights(self, weights, keep_quantized, tied=tied)
