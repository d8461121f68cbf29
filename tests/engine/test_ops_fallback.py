"""Whole models on the torch versions of the fused small ops (as without the C extension), against
transformers: the fallback must keep the same bounds as the C path (test_reference_logits)."""
from __future__ import annotations

import pytest
import torch

import corral.kernels.ops as ops
from corral import SamplingParams
from engine_helpers import hf_greedy, rel_error
from test_reference_logits import PROMPT_IDS


@pytest.mark.parametrize("arch", ["llama31", "qwen2", "qwen3"])  # llama3 rope, q/k/v bias, q/k norm
def test_logits_without_the_ops_extension(arch, monkeypatch, make_llm, tiny_models, reference_logits):
    monkeypatch.setattr(ops, "_ext", None)
    llm = make_llm(arch, "hf")
    expected = reference_logits(tiny_models(arch, "hf"), PROMPT_IDS)
    assert rel_error(llm.engine.prompt_logits(PROMPT_IDS), expected) <= 1e-4


def test_greedy_decode_without_the_ops_extension(monkeypatch, make_llm, tiny_models):
    import transformers

    monkeypatch.setattr(ops, "_ext", None)
    llm = make_llm("qwen2", "hf")
    out = llm.generate([{"prompt_token_ids": PROMPT_IDS}], SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))
    reference = transformers.AutoModelForCausalLM.from_pretrained(tiny_models("qwen2", "hf"), dtype=torch.float64)
    assert out[0].outputs[0].token_ids == hf_greedy(reference, PROMPT_IDS, 8)
