"""Mixture-of-experts models (Mixtral, Qwen2-MoE, Qwen3-MoE): Llama's layers with a sparse MLP.

The sparse block groups the step's tokens by expert: each chosen expert runs once, on all the
tokens that chose it, so its weights are read once per step (and an expert no token chose is not
read at all). Experts are ordinary `Linear`s, so quantized ones stay quantized on the CPU.

With the C kernels, routing (the router's softmax and top-k) is one call (moe.c) at any batch
size, and a single token's whole block (routing, its experts' gate/up in one parallel region,
SiLU, their down projections in another, the weighted sum in ascending expert order) is another:
the call the C decode loop (llama_decode.py) makes too, so both give the same values.
"""
from __future__ import annotations

import torch
from torch import nn

from corral import kernels
from corral.kernels import ops
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
        self._plan = None  # c_plan(): the C kernels' capsule, False when they cannot run the block
        if moe.shared_expert_size:
            self.shared_expert = LlamaMLP(_sized(cfg, moe.shared_expert_size))
            self.shared_expert_gate = Linear(cfg.hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (T, hidden) -> (T, hidden)
        plan = self.c_plan() if x.dtype is torch.float32 and x.is_cpu and x.is_contiguous() else None
        if plan is not None and x.shape[0] == 1 and self._quantized_experts():
            out = torch.empty_like(x)  # routing and the chosen experts in one C call (moe.c)
            ops._ext.moe_token(ops._BEST, plan, x.data_ptr(), out.data_ptr(), torch.get_num_threads())
        else:
            if plan is not None:  # the same routing as one token's C call gives
                weights = x.new_empty(x.shape[0], self.moe.top_k)
                chosen = torch.empty(x.shape[0], self.moe.top_k, dtype=torch.int64)
                ops._ext.moe_route(ops._BEST, plan, x.data_ptr(), x.shape[0], weights.data_ptr(), chosen.data_ptr(),
                                   torch.get_num_threads())
            else:
                probs = torch.softmax(self.gate(x).float(), dim=-1)  # (T, E)
                weights, chosen = torch.topk(probs, self.moe.top_k, dim=-1)  # (T, K) each
                if self.moe.normalize_top_k:
                    weights = weights / weights.sum(dim=-1, keepdim=True)
                weights = weights.to(x.dtype)
            out = self._grouped(x, chosen, weights)
        if self.moe.shared_expert_size:
            out += torch.sigmoid(self.shared_expert_gate(x)) * self.shared_expert(x)
        return out

    def c_plan(self):
        """The block as the C kernels take it (router and, when all kept in blocks, experts), built
        once the weights are loaded; None without the kernels or with a router they do not read."""
        if self._plan is None:
            self._plan = self._build_plan() or False
        return self._plan or None

    def _build_plan(self):
        if not (kernels.is_available() and ops.is_available()) or self.gate.bias is not None:
            return None
        if self.moe.top_k > ops._ext.MOE_MAX_TOP_K:  # more experts a token than the C block runs: torch's
            return None
        router, router_q = 0, None
        packed = self.gate.packed
        if packed is not None and not packed.float_activations:
            router_q = _blocks(packed)
        elif packed is None and self.gate.weight is not None and self.gate.weight.dtype is torch.float32 \
                and self.gate.weight.is_contiguous() and self.gate.weight.is_cpu:
            router = self.gate.weight.data_ptr()
        else:
            return None
        experts = None
        if self._quantized_experts():
            experts = [_blocks(p.packed) for e in self.experts for p in e.parts]
        moe = self.moe
        return ops._ext.moe_plan(router, router_q, moe.num_experts, self.gate.in_features, moe.expert_size, moe.top_k,
                                 moe.normalize_top_k, experts)

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
        order) and gates by SiLU: what the one-token C path runs on."""
        if self._all_packed is None:
            self._all_packed = all(
                p.packed is not None and not p.packed.float_activations and p.bias is None and e.act == "silu"
                for e in self.experts for p in e.parts)
        return self._all_packed


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


def _blocks(packed) -> tuple[int, int, int, int]:
    """A weight kept in blocks as moe_plan takes it: (type_id, address, row stride, rows)."""
    return (packed.type_id, packed.addr, packed.row_stride, packed.shape[0])


def _sized(cfg: ModelConfig, intermediate: int) -> ModelConfig:
    from dataclasses import replace

    return replace(cfg, intermediate_size=intermediate)
