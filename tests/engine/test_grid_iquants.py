"""A model file whose weights are the grid i-quants and ternary types (IQ1_S .. IQ3_S, TQ1_0,
TQ2_0): corral loads it and its logits match transformers running the weights that gguf-py
dequantizes from the same bytes. The blocks are random (valid) bytes: gguf-py cannot encode
these types, and any valid bytes test the decoding."""
from __future__ import annotations

import itertools
import warnings

import pytest
import torch
import transformers
from fixtures.ggml_blocks import random_blocks

from corral import LLM
from corral.loader import gguf_export
from corral.loader.ggml_types import BLOCK_GEOMETRY
from corral.loader.gguf_file import GGUFFile
from engine_helpers import rel_error

GRID_TYPES = ["IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0"]
PROMPT_IDS = list(range(3, 35))


def write_grid_iquant_gguf(hf_dir, out, monkeypatch):
    """The tiny model with its 2-D weights cycling through GRID_TYPES (norms F32), random blocks
    with fp16 scales small enough that activations stay moderate."""
    types = itertools.cycle(GRID_TYPES)
    seeds = itertools.count()
    real_quantize = gguf_export.quantize

    def fake_quantize(w, type_name):
        if type_name not in GRID_TYPES:
            return real_quantize(w, type_name)
        block_size, _ = BLOCK_GEOMETRY[type_name]
        return random_blocks(type_name, w.shape[0], w.shape[1] // block_size, seed=next(seeds), scale=0.002)

    monkeypatch.setattr(gguf_export, "tensor_type", lambda name, shape, *_: "F32" if len(shape) < 2 else next(types))
    monkeypatch.setattr(gguf_export, "quantize", fake_quantize)
    return gguf_export.export_gguf(hf_dir, out, "Q8_0", name="tiny-grid-iq")


def test_grid_iquant_file_logits_match_transformers(tiny_models, tmp_path, monkeypatch):
    hf_dir = tiny_models("llama", "hf")
    path = write_grid_iquant_gguf(hf_dir, tmp_path / "tiny-grid-iq.gguf", monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_gguf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float64)
        reference = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float64)
        reference.load_state_dict(from_gguf.state_dict(), strict=False)
        llm = LLM(str(path), max_model_len=128, kv_cache_memory=8 << 20)
    types = {t.type_name for t in GGUFFile(path).tensors.values() if len(t.shape) == 2}
    assert types == set(GRID_TYPES)
    with torch.no_grad():
        expected = reference(torch.tensor([PROMPT_IDS])).logits[0]
    got = llm.engine.prompt_logits(PROMPT_IDS)
    assert torch.isfinite(expected).all() and expected.std() > 1e-3
    assert rel_error(got, expected) <= 1e-4
