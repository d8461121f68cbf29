"""Mixture-of-experts models (Mixtral, Qwen2-MoE, Qwen3-MoE): Llama's layers with a sparse MLP.

The sparse block groups the step's tokens by expert: each chosen expert runs once, on all the
tokens that chose it, so its weights are read once per step (and an expert no token chose is not
read at all). Experts are ordinary `Linear`s, so quantized ones stay quantized on the CPU.
"""
from __future__ import annotations

import torch
from torch import nn

from corral import kernels

from corral.layers.activation import gated
from corral.layers.lean_module import LeanModule
from corral.layers.linear import Linear, project_all
from corral.loader.config import ModelConfig
from corral.models.llama import LlamaDecoderLayer, LlamaForCausalLM, LlamaMLP
from corral.models.moe import MoeSettings, moe_settings


class Expert(LeanModule):
    """act(gate(x)) * up(x) -> down, under either checkpoint's names (Mixtral: w1, w3, w2)."""

    def __init__(self, hidden: int, size: int, act: str, mixtral_names: bool):
        super().__init__()
        self.act = act
        self.names = ("w1", "w3", "w2") if mixtral_names else ("gate_proj", "up_proj", "down_proj")
        gate, up, down = self.names
        setattr(self, gate, Linear(hidden, size))
        setattr(self, up, Linear(hidden, size))
        setattr(self, down, Linear(size, hidden))
        self.parts = [getattr(self, n) for n in self.names]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up, down = self.parts
        g, u = project_all(x, [gate, up])  # (n, size) each
        return down(gated(self.act, g, u, out=g))


class SparseMoeBlock(LeanModule):
    def __init__(self, cfg: ModelConfig, moe: MoeSettings):
        super().__init__()
        self.moe = moe
        self.gate = Linear(cfg.hidden_size, moe.num_experts)
        self.experts = nn.ModuleList(
            Expert(cfg.hidden_size, moe.expert_size, cfg.hidden_act, moe.mixtral_names) for _ in range(moe.num_experts)
        )
        self._all_packed: bool | None = None  # set on first use, once the weights are loaded
        if moe.shared_expert_size:
            self.shared_expert = LlamaMLP(_sized(cfg, moe.shared_expert_size))
            self.shared_expert_gate = Linear(cfg.hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (T, hidden) -> (T, hidden)
        probs = torch.softmax(self.gate(x).float(), dim=-1)  # (T, E)
        weights, chosen = torch.topk(probs, self.moe.top_k, dim=-1)  # (T, K) each
        if self.moe.normalize_top_k:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        weights = weights.to(x.dtype)
        if x.shape[0] == 1 and self._quantized_experts():
            out = self._one_token(x, chosen[0].tolist(), weights[0])
        else:
            out = self._grouped(x, chosen, weights)
        if self.moe.shared_expert_size:
            out += torch.sigmoid(self.shared_expert_gate(x)) * self.shared_expert(x)
        return out

    def _grouped(self, x: torch.Tensor, chosen: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x)
        flat = chosen.flatten()  # (T*K,) expert of each (token, slot)
        order = torch.argsort(flat, stable=True)
        experts, counts = torch.unique_consecutive(flat[order], return_counts=True)
        start = 0
        for e, n in zip(experts.tolist(), counts.tolist()):
            picks = order[start:start + n]  # (n,) flat (token, slot) indices routed to expert e
            start += n
            rows = picks // self.moe.top_k
            y = self.experts[e](x[rows]) * weights.flatten()[picks, None]  # (n, hidden)
            out.index_add_(0, rows, y)
        return out

    def _quantized_experts(self) -> bool:
        """Whether every expert projection is kept in blocks for the int8 kernels (bias-free, rows in
        order): what the one-token path runs on."""
        if self._all_packed is None:
            self._all_packed = all(
                p.packed is not None and not p.packed.float_activations and p.bias is None
                for e in self.experts for p in e.parts)
        return self._all_packed

    def _one_token(self, x: torch.Tensor, experts: list[int], weights: torch.Tensor) -> torch.Tensor:
        """One token (decode at batch 1): the chosen experts' gate and up projections in one kernel
        call (they share x), their down projections in another (each on its own activations), then
        the weighted sum in ascending expert order, as `_grouped` adds them: the same values."""
        order = sorted(range(len(experts)), key=experts.__getitem__)
        chosen = [self.experts[experts[i]] for i in order]
        size = self.moe.expert_size
        g, u = x.new_empty(len(chosen), size), x.new_empty(len(chosen), size)
        outs = [buf[i:i + 1] for i in range(len(chosen)) for buf in (g, u)]
        kernels.qmatmul_many(x, [p.packed for e in chosen for p in e.parts[:2]], out=outs)
        h = gated(chosen[0].act, g, u, out=g)  # (k, size)
        ys = kernels.qmatmul_each([h[i:i + 1] for i in range(len(chosen))], [e.parts[2].packed for e in chosen])
        out = torch.zeros_like(x)
        for i, y in zip(order, ys):
            out += y * weights[i]
        return out


class MoeDecoderLayer(LlamaDecoderLayer):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__(cfg, layer_idx)
        moe = moe_settings(cfg)
        if moe.sparse_layers[layer_idx]:
            del self.mlp
            block = SparseMoeBlock(cfg, moe)
            setattr(self, "block_sparse_moe" if moe.mixtral_names else "mlp", block)
            self.__dict__["mlp"] = block  # what LlamaDecoderLayer.forward calls, registered once


class MoeForCausalLM(LlamaForCausalLM):
    def __init__(self, cfg: ModelConfig, max_positions: int):
        super().__init__(cfg, max_positions)
        self.model.layers = nn.ModuleList(MoeDecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers))


def _sized(cfg: ModelConfig, intermediate: int) -> ModelConfig:
    from dataclasses import replace

    return replace(cfg, intermediate_size=intermediate)
