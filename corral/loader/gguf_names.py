"""GGUF tensor names <-> Hugging Face parameter names, and llama.cpp's Q/K row order.

llama.cpp's converter reorders the rows of llama-arch q_proj/k_proj (weights and biases) so
that each head's rotary pairs sit next to each other (interleaved rotary); HF keeps the two
halves of a head apart. `rotary_row_order` gives the row gather that converts either way.
"""
from __future__ import annotations

import re

import numpy as np

# per-layer GGUF stem -> HF module path inside model.layers.{i}
LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
GLOBAL_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
# GGUF tensors that carry no HF weight (folded into the config instead)
NON_WEIGHT_TENSORS = frozenset({"rope_freqs.weight"})

_LAYER_HF = {v: k for k, v in LAYER_NAMES.items()}
_GLOBAL_HF = {v: k for k, v in GLOBAL_NAMES.items()}
_GGUF_RE = re.compile(r"^blk\.(\d+)\.(\w+)\.(weight|bias)$")
# llama.cpp's files from before it stacked experts (early Mixtral): "blk.3.ffn_gate.5.weight" is
# expert 5's slice of what newer files hold as "blk.3.ffn_gate_exps.weight"
_LEGACY_EXPERT_RE = re.compile(r"^blk\.(\d+)\.(\w+)\.(\d+)\.(weight|bias)$")
_EXPERT_RE = re.compile(r"experts\.\d+\.")
_HF_RE = re.compile(r"^model\.layers\.(\d+)\.([\w.]+)\.(weight|bias)$")


def gguf_to_hf(name: str, layer_names: dict[str, str] = LAYER_NAMES) -> str | None:
    """"blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight"; None when unknown.
    `layer_names`: the family's per-layer stems (default: the Llama family's)."""
    m = _GGUF_RE.match(name)
    if m:
        hf = layer_names.get(m.group(2))
        return None if hf is None else f"model.layers.{m.group(1)}.{hf}.{m.group(3)}"
    m = _LEGACY_EXPERT_RE.match(name)
    if m:
        hf = layer_names.get(m.group(2) + "_exps")
        return None if hf is None else f"model.layers.{m.group(1)}.{hf.format(int(m.group(3)))}.{m.group(4)}"
    stem, _, suffix = name.rpartition(".")
    hf = GLOBAL_NAMES.get(stem)
    return None if hf is None or suffix not in ("weight", "bias") else f"{hf}.{suffix}"


def hf_to_gguf(name: str, layer_names: dict[str, str] = LAYER_NAMES) -> str | None:
    """Inverse of gguf_to_hf; None when the HF name has no GGUF counterpart."""
    m = _HF_RE.match(name)
    if m:
        inverse = _LAYER_HF if layer_names is LAYER_NAMES else {v: k for k, v in layer_names.items()}
        # GGUF stacks a layer's experts in one 3-D tensor: HF "mlp.experts.3.up_proj" is one slice
        stem = inverse.get(m.group(2)) or inverse.get(_EXPERT_RE.sub("experts.{}.", m.group(2)))
        return None if stem is None else f"blk.{m.group(1)}.{stem}.{m.group(3)}"
    stem, _, suffix = name.rpartition(".")
    g = _GLOBAL_HF.get(stem)
    return None if g is None else f"{g}.{suffix}"


def legacy_expert_name(gguf_name: str, hf_name: str) -> str | None:
    """The per-expert name older files use for HF expert weight `hf_name`, whose stacked GGUF name
    is `gguf_name` ("blk.3.ffn_gate_exps.weight", "...experts.5.w1.weight" -> "blk.3.ffn_gate.5.weight");
    None for other tensors."""
    m = re.search(r"\.experts\.(\d+)\.", hf_name)
    stem, dot, suffix = gguf_name.rpartition(".")
    if m is None or not stem.endswith("_exps"):
        return None
    return f"{stem.removesuffix('_exps')}.{m.group(1)}{dot}{suffix}"


def permuted_heads(gguf_name: str, n_heads: int, n_kv_heads: int) -> int | None:
    """How many heads the rows of this tensor were permuted over in a llama-arch GGUF, or None."""
    m = _GGUF_RE.match(gguf_name)
    if m is None:
        return None
    return {"attn_q": n_heads, "attn_k": n_kv_heads}.get(m.group(2))


def rotary_row_order(n_rows: int, n_heads: int, *, to_hf: bool) -> np.ndarray:
    """(n_rows,) int64 index: `w_out = w_in[index]` converts row order.

    to_hf=True undoes llama.cpp's permute (GGUF -> HF); to_hf=False applies it (HF -> GGUF).
    Within each head of `head_dim = n_rows // n_heads` rows, HF row `j * head_dim/2 + i`
    (half j of pair i) is GGUF row `2 * i + j`.
    """
    half = n_rows // n_heads // 2
    rows = np.arange(n_rows)
    if to_hf:  # HF (head, j, i) gathers GGUF (head, i, j)
        return rows.reshape(n_heads, half, 2).transpose(0, 2, 1).reshape(-1)
    return rows.reshape(n_heads, 2, half).transpose(0, 2, 1).reshape(-1)
