"""What a family's files are named and how their Llama-shaped parts differ, in one row.

A row says how a GGUF `general.architecture` maps to the Hugging Face class and `model_type`,
and what differs in the files: whether llama.cpp's converter permuted the Q/K rows for its
interleaved rotary layout, whether q/k/v always carry a bias, whether q/k have a per-head RMSNorm.
Each family declares its row, and everything else particular to it, in `corral/models/` through
`corral.loader.family.Family`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArchSpec:
    gguf_arch: str  # general.architecture in GGUF files
    hf_architecture: str  # config.json "architectures"[0]
    model_type: str  # config.json "model_type"
    permuted_qk: bool = False  # GGUF Q/K rows are in llama.cpp's interleaved-rotary order
    always_qkv_bias: bool = False  # q/k/v projections always have a bias (Qwen2)
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3)
