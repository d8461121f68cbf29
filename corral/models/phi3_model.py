"""Phi-3 / Phi-3.5 / Phi-4: Llama's modules; what differs in the files is declared in `phi3.py`."""
from __future__ import annotations

from typing import Iterable

from corral.loader.quantized import QuantizedWeight
from corral.models.llama import LlamaForCausalLM


class Phi3ForCausalLM(LlamaForCausalLM):
    """Llama's modules; fused checkpoint tensors are split on the way in."""

    def load_weights(self, weights: Iterable, keep_quantized: bool = False) -> None:
        cfg = self.config
        qkv = (cfg.q_size, cfg.kv_size, cfg.kv_size)
        gate_up = (cfg.intermediate_size, cfg.intermediate_size)

        def split():
            for name, w in weights:
                if name.endswith("self_attn.qkv_proj.weight"):
                    yield from _split_rows(name.replace("qkv_proj", "{}_proj"), w, "qkv", qkv)
                elif name.endswith("mlp.gate_up_proj.weight"):
                    yield from _split_rows(name.replace("gate_up_proj", "{}_proj"), w, ("gate", "up"), gate_up)
                else:
                    yield name, w

        super().load_weights(split(), keep_quantized)


def _split_rows(pattern: str, w, parts, sizes):
    """(pattern.format(part), rows of w) for consecutive row ranges of `sizes`."""
    start = 0
    for part, n in zip(parts, sizes):
        if isinstance(w, QuantizedWeight):
            piece = QuantizedWeight(w.type_name, (n, w.shape[1]), w.data[start:start + n])
        else:
            piece = w[start:start + n]
        yield pattern.format(part), piece
        start += n
