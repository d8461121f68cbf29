"""The fit estimate counts the KV cache as the engine sizes it, and the verdict thresholds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from corral.engine.kv_cache import bytes_per_block
from corral.loader.hf_config import config_from_hf
from corral.server import fit


@pytest.mark.parametrize("weight_type", ["Q8_0", "F16"])
def test_gguf_kv_bytes_match_the_engines_cache(tiny_models, weight_type):
    from corral import LLM

    path = tiny_models("qwen2", weight_type)
    engine = LLM(str(path), max_model_len=64, kv_cache_memory=1 << 20, max_num_seqs=1).engine
    assert fit.kv_bytes_per_token(path, "gguf") == bytes_per_block(engine.model_config, 1, engine.kv_cache_dtype)


def test_hf_kv_bytes_match_the_engines_cache(tiny_models):
    path = tiny_models("qwen3", "hf")  # head_dim set apart from hidden_size / heads
    cfg = config_from_hf(json.loads((path / "config.json").read_text()))
    assert fit.kv_bytes_per_token(path, "hf") == bytes_per_block(cfg, 1, torch.float32)


def test_verdicts():
    assert fit.estimate(70, 1, 10, 100)["fit"] == "fits"
    assert fit.estimate(85, 1, 10, 100)["fit"] == "tight"
    assert fit.estimate(95, 1, 10, 100)["fit"] == "too big"
    assert fit.estimate(None, 1, 10, 100)["fit"] == "unknown"
    assert fit.kv_bytes_per_token(Path(__file__), "gguf") is None  # not a GGUF file: no estimate, no error
