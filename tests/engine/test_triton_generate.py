"""A whole generation with the Triton attention backend: interpreted on the CPU (tests/conftest.py
sets TRITON_INTERPRET=1 without a GPU), it gives the torch backend's greedy tokens."""
from __future__ import annotations

import os

import pytest
import torch

from corral import SamplingParams
from engine_helpers import rel_error

pytest.importorskip("triton", reason="Triton is not installed (it comes with the test extra)")
if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
    pytest.skip("no GPU, and TRITON_INTERPRET is not 1", allow_module_level=True)


@pytest.mark.parametrize("arch", ["llama", "gemma2"])  # Gemma 2: windows and soft-capped scores
def test_triton_backend_generates_the_torch_backends_tokens(make_llm, arch):
    params = SamplingParams(temperature=0, max_tokens=5, ignore_eos=True)
    prompts = [{"prompt_token_ids": list(range(3, 3 + n))} for n in (19, 6)]  # prefill, then decode steps
    device = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"
    triton_llm = make_llm(arch, "hf", attention_backend="triton", device=device, dtype="float32", block_size=8)
    assert triton_llm.engine.attention_backend == "triton"
    got = [o.outputs[0].token_ids for o in triton_llm.generate(prompts, params)]
    torch_llm = make_llm(arch, "hf", attention_backend="torch")
    expected = [o.outputs[0].token_ids for o in torch_llm.generate(prompts, params)]
    assert got == expected
    ids = list(range(3, 40))
    logits = triton_llm.engine.prompt_logits(ids).cpu()
    assert rel_error(logits, torch_llm.engine.prompt_logits(ids)) <= 1e-4
