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
                # nor does its qwen3moe reader take the experts' size from expert_feed_forward_length
                hf_config = json.loads((tiny_models(arch, "hf") / "config.json").read_text())
                if "moe_intermediate_size" in hf_config:
                    pad = {"moe_intermediate_size": hf_config["moe_intermediate_size"], **reference_kwargs(path.parent / "hf")}
                from_gguf = transformers.AutoModelForCausalLM.from_pretrained(
                    path.parent, gguf_file=path.name, dtype=torch.float64, **pad
                )
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    tiny_models(arch, "hf"), dtype=torch.float64, **reference_kwargs(tiny_models(arch, "hf")))
            missing, unexpected = model.load_state_dict(from_gguf.state_dict(), strict=False)
            if [m for m in missing if not m.endswith("lm_head.weight")] or unexpected:
                raise RuntimeError(f"GGUF reference weights do not line up: {missing} {unexpected}")
            model.tie_weights() if model.config.tie_word_embeddings else None
            cache[key] = model.eval()
        return cache[key]

    return build
