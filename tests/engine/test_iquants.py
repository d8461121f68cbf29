"""IQ4_NL and IQ4_XS model files: corral's logits against transformers running the weights that
gguf-py dequantizes from the same bytes (the encoder is a test one; the decoding is checked)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import transformers
from fixtures.iquants import quantize_iq4_nl, quantize_iq4_xs

from corral import LLM
from corral.layers.linear import Linear
from corral.loader import gguf_export
from corral.loader.gguf_file import GGUFFile
from engine_helpers import rel_error

ENCODERS = {"IQ4_NL": quantize_iq4_nl, "IQ4_XS": quantize_iq4_xs}
PROMPT_IDS = list(range(3, 43))


def write_iquant_gguf(hf_dir, out, type_name, monkeypatch):
    """The tiny model as llama.cpp would write an all-`type_name` file (norms F32)."""
    encode = ENCODERS[type_name]
    real_quantize = gguf_export.quantize
    monkeypatch.setattr(gguf_export, "tensor_type", lambda name, shape, *_: "F32" if len(shape) < 2 else type_name)
    monkeypatch.setattr(gguf_export, "quantize", lambda w, t: encode(w) if t in ENCODERS else real_quantize(w, t))
    return gguf_export.export_gguf(hf_dir, out, "Q8_0", name="tiny-iq")


@pytest.mark.parametrize("keep_quantized", [False, True])
@pytest.mark.parametrize("type_name", sorted(ENCODERS))
def test_iquant_file_logits_match_transformers(type_name, keep_quantized, tiny_models, tmp_path, monkeypatch):
    hf_dir = tiny_models("llama", "hf")
    path = write_iquant_gguf(hf_dir, tmp_path / f"tiny-{type_name}.gguf", type_name, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_gguf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float64)
        reference = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float64)
        reference.load_state_dict(from_gguf.state_dict(), strict=False)
        llm = LLM(str(path), max_model_len=128, kv_cache_memory=8 << 20, keep_quantized=keep_quantized)
    types = {t.type_name for t in GGUFFile(path).tensors.values() if len(t.shape) == 2}
    assert types == {type_name}
    with torch.no_grad():
        expected = reference(torch.tensor([PROMPT_IDS])).logits[0]
        unquantized = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float64)(
            torch.tensor([PROMPT_IDS])).logits[0]
    linears = [m for m in llm.engine.runner.model.modules() if isinstance(m, Linear)]
    # kept quantized: the IQ4 kernels run every projection (the int8 activations cost some accuracy)
    assert all((m.packed is not None and m.packed.type_name == type_name) == keep_quantized for m in linears)
    got = llm.engine.prompt_logits(PROMPT_IDS)
    assert rel_error(got, expected) <= (5e-2 if keep_quantized else 1e-4)  # as test_reference_logits bounds kernels
    assert rel_error(got, unquantized) > 1e-3  # the file's 4-bit weights, not the folder's
