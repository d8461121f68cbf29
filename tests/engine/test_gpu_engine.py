"""The engine on a CUDA GPU (skipped without one; benchmarks/gpu_check.sh runs it there): greedy
tokens equal the CPU backend's, with CUDA graphs and without, and bfloat16 stays close."""
from __future__ import annotations

import pytest
import torch

from corral import SamplingParams
from engine_helpers import rel_error

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
PROMPTS = [{"prompt_token_ids": list(range(3, 3 + n))} for n in (40, 9, 23)]
GREEDY = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)


@pytest.mark.parametrize("enforce_eager", [True, False], ids=["eager", "graphs"])
@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_greedy_on_cuda_equals_the_cpu_backend(arch, backend, enforce_eager, make_llm):
    cpu = [o.outputs[0].token_ids for o in make_llm(arch, "hf", device="cpu").generate(PROMPTS, GREEDY)]
    llm = make_llm(arch, "hf", device="cuda", dtype="float32", attention_backend=backend,
                   enforce_eager=enforce_eager, max_num_seqs=8)
    assert llm.engine.device.type == "cuda"
    assert (llm.engine.runner.graphs is not None) == (backend == "triton" and not enforce_eager)
    assert [o.outputs[0].token_ids for o in llm.generate(PROMPTS, GREEDY)] == cpu


def test_bfloat16_on_cuda_is_close_to_float32(make_llm):
    ids = PROMPTS[0]["prompt_token_ids"]
    full = make_llm("llama", "hf", device="cpu").engine.prompt_logits(ids)
    half = make_llm("llama", "hf", device="cuda").engine  # auto: bfloat16, triton
    assert (half.dtype, half.attention_backend) == (torch.bfloat16, "triton")
    assert rel_error(half.prompt_logits(ids).cpu(), full) <= 3e-2
