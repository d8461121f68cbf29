"""The HF parameter names and shapes a config implies, to check a file before loading starts.

`check_layer_count` must pass before the others run: a hostile layer count (2**32 - 1) would
otherwise make these lists themselves unbounded. `check_shapes` then ties every size in the
config (vocabulary, widths, heads) to tensors that really are in the file, so nothing is
allocated for sizes the file does not back with data.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from corral.errors import ModelFileError
from corral.loader.config import ModelConfig

TENSORS_PER_LAYER = 6  # the fewest a layer has: Phi-3's fused qkv and gate_up, o, down and two norms


def expected_hf_shapes(cfg: ModelConfig, with_lm_head: bool | None = None) -> dict[str, tuple[int, ...]]:
    """HF name -> shape (outermost first) of every weight the model needs; lm_head is left out when
    the embeddings are tied, unless `with_lm_head`."""
    hidden, inter, vocab = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,)}
    if with_lm_head if with_lm_head is not None else not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (vocab, hidden)
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        for x, rows in (("q", cfg.q_size), ("k", cfg.kv_size), ("v", cfg.kv_size)):
            shapes[p + f"self_attn.{x}_proj.weight"] = (rows, hidden)
        shapes[p + "self_attn.o_proj.weight"] = (hidden, cfg.q_size)
        shapes[p + "mlp.gate_proj.weight"] = (inter, hidden)
        shapes[p + "mlp.up_proj.weight"] = (inter, hidden)
        shapes[p + "mlp.down_proj.weight"] = (hidden, inter)
        shapes[p + "input_layernorm.weight"] = (hidden,)
        shapes[p + "post_attention_layernorm.weight"] = (hidden,)
        if cfg.attention_bias:
            for x, rows in (("q", cfg.q_size), ("k", cfg.kv_size), ("v", cfg.kv_size)):
                shapes[p + f"self_attn.{x}_proj.bias"] = (rows,)
        if cfg.qk_norm:
            shapes[p + "self_attn.q_norm.weight"] = (cfg.head_dim,)
            shapes[p + "self_attn.k_norm.weight"] = (cfg.head_dim,)
    return shapes


def expected_hf_names(cfg: ModelConfig, family: bool = True) -> list[str]:
    """Every weight the model needs, in HF names (lm_head omitted when tied). A family that
    declares its own names (`corral.loader.family`) answers for its models unless family=False."""
    if family:
        from corral.loader.family import family_for_config

        found = family_for_config(cfg)
        if found is not None:
            return found.expected_hf_names(cfg)
    return list(expected_hf_shapes(cfg))


def check_layer_count(cfg: ModelConfig, n_tensors: int, path: str | Path) -> None:
    """Raise when the file has too few tensors for the configured number of layers."""
    most = max(0, n_tensors - 2) // TENSORS_PER_LAYER  # two more: the embedding and final norm
    if cfg.num_hidden_layers > most:
        raise ModelFileError(path, f"the configuration says {cfg.num_hidden_layers} layers, but the file's "
                                   f"{n_tensors} tensors hold at most {most}; the file is incomplete or corrupt")


def check_shapes(cfg: ModelConfig, found: Mapping[str, tuple[int, ...]], path: str | Path,
                 file_name: Callable[[str], str] = str) -> None:
    """Raise when a tensor in `found` (HF name -> shape) has another shape than the config implies.
    Missing tensors are the caller's to report; `file_name` maps an HF name to the file's. A family
    with names of its own is checked on the names it shares with the Llama layout."""
    needed = set(expected_hf_names(cfg)) | {"lm_head.weight"}
    for name, want in expected_hf_shapes(cfg, with_lm_head=True).items():
        got = found.get(name)
        if got is not None and name in needed and tuple(got) != want:
            raise ModelFileError(path, f"tensor {file_name(name)!r} has shape {tuple(got)}, but the configuration "
                                       f"implies {want}; the file and its configuration do not match")
