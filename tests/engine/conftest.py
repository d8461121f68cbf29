"""Engine test helpers: tiny models loaded into corral and into transformers."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from corral import LLM
from fixtures.tiny_models import reference_kwargs

SMALL = dict(max_model_len=256, kv_cache_memory=8 << 20)


@pytest.fixture(scope="session")
def make_llm(tiny_models):
    """`make_llm(arch, fmt, **engine_kwargs)`: a fresh corral LLM on a tiny fixture model."""

    def make(arch: str, fmt: str = "hf", **kwargs) -> LLM:
        return LLM(str(tiny_models(arch, fmt)), **{**SMALL, **kwargs})

    return make


@pytest.fixture(scope="session")
def gguf_reference(tiny_models):
    """`gguf_reference(arch, gguf_type) -> transformers model (float64)` holding the weights that
    transformers' own GGUF reader dequantizes from the file, in the architecture the HF folder's
    config.json describes (its GGUF reader ignores llama3 rope scaling, its config does not)."""
    import transformers

    cache: dict = {}

    def build(arch: str, gguf_type: str):
        key = (arch, gguf_type)
        if key not in cache:
            path = tiny_models(arch, gguf_type)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # transformers gives a Phi-3 read from GGUF the 32000 pad id of its config class,
                # outside these tiny vocabularies
                pad = {"pad_token_id": None} if arch.startswith("phi") else {}
                # nor do its qwen2moe/qwen3moe readers take the experts' sizes from the file
                hf_config = json.loads((tiny_models(arch, "hf") / "config.json").read_text())
                if "moe_intermediate_size" in hf_config:
                    sizes = ("moe_intermediate_size", "shared_expert_intermediate_size")
                    pad = {k: hf_config[k] for k in sizes if k in hf_config} | reference_kwargs(path.parent / "hf")
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    tiny_models(arch, "hf"), dtype=torch.float64, **reference_kwargs(tiny_models(arch, "hf")))
                if hf_config["model_type"] == "mixtral":  # a llama-arch file with experts: no transformers reader
                    state = gguf_py_mixtral_state(path, hf_config)
                else:
                    state = transformers.AutoModelForCausalLM.from_pretrained(
                        path.parent, gguf_file=path.name, dtype=torch.float64, **pad
                    ).state_dict()
            missing, unexpected = model.load_state_dict(state, strict=False)
            if [m for m in missing if not m.endswith("lm_head.weight")] or unexpected:
                raise RuntimeError(f"GGUF reference weights do not line up: {missing} {unexpected}")
            model.tie_weights() if model.config.tie_word_embeddings else None
            cache[key] = model.eval()
        return cache[key]

    return build


def gguf_py_mixtral_state(path, hf_config: dict) -> dict:
    """transformers' MixtralForCausalLM state dict of a Mixtral GGUF (arch "llama" with stacked
    experts) from gguf-py's own reader and dequantizer, Q/K rows un-permuted as llama.cpp's
    converter permuted them."""
    import gguf
    import numpy as np

    layer = {"attn_q": "self_attn.q_proj.weight", "attn_k": "self_attn.k_proj.weight",
             "attn_v": "self_attn.v_proj.weight", "attn_output": "self_attn.o_proj.weight",
             "attn_norm": "input_layernorm.weight", "ffn_norm": "post_attention_layernorm.weight",
             "ffn_gate_inp": "mlp.gate.weight", "ffn_down_exps": "mlp.experts.down_proj"}
    top = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
           "output.weight": "lm_head.weight"}
    heads = {"attn_q": hf_config["num_attention_heads"], "attn_k": hf_config["num_key_value_heads"]}
    state, gate_up = {}, {}
    for t in gguf.GGUFReader(str(path)).tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        w = torch.from_numpy(w.reshape([int(n) for n in reversed(t.shape)]))
        if t.name in top:
            state[top[t.name]] = w
            continue
        _, bid, stem, _ = t.name.split(".")
        if stem in ("ffn_gate_exps", "ffn_up_exps"):  # (E, ff, hidden) each; transformers fuses gate, up
            gate_up.setdefault(bid, {})[stem] = w
            continue
        if stem in heads:  # (heads, pair i, half j) -> (heads, half j, pair i)
            n = heads[stem]
            w = w.reshape(n, w.shape[0] // n // 2, 2, -1).transpose(1, 2).reshape(w.shape)
        state[f"model.layers.{bid}.{layer[stem]}"] = w
    for bid, parts in gate_up.items():
        state[f"model.layers.{bid}.mlp.experts.gate_up_proj"] = torch.cat(
            [parts["ffn_gate_exps"], parts["ffn_up_exps"]], dim=1)
    return state
