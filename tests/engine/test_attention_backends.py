"""The attention backends by name: `torch` (the device-generic reference) gives the `cpu`
backend's and transformers' greedy tokens on the tiny models, and names that cannot run are
refused before a model loads."""
from __future__ import annotations

import pytest
import torch

from corral import SamplingParams
from corral.errors import ValidationError
from corral.kernels import attention as kernel
from corral.layers.attention import resolve_backend_name
from engine_helpers import hf_greedy

PROMPT = "def add(a, b):\n    return a + b  # naïve 数字 123"
GREEDY = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)


@pytest.mark.parametrize("arch", ["llama", "qwen3"])  # head size 64 and 128, both GQA
def test_torch_backend_greedy_equals_cpu_backend_and_transformers(arch, make_llm, tiny_models):
    import transformers

    torch_out = make_llm(arch, "hf", attention_backend="torch").generate([PROMPT], GREEDY)[0]
    assert torch_out.outputs[0].token_ids
    if kernel.is_available():
        cpu_out = make_llm(arch, "hf", attention_backend="cpu").generate([PROMPT], GREEDY)[0]
        assert cpu_out.outputs[0].token_ids == torch_out.outputs[0].token_ids
    reference = transformers.AutoModelForCausalLM.from_pretrained(tiny_models(arch, "hf"), dtype=torch.float64)
    assert torch_out.outputs[0].token_ids == hf_greedy(reference, torch_out.prompt_token_ids, 12)


def test_torch_backend_batches_chunks_and_cached_prefixes(make_llm):
    """Mixed steps: prompts split into chunks (context from cached blocks) next to decodes, and a
    prefix-cache hit; every sequence's tokens equal its run alone."""
    llm = make_llm("qwen2", "hf", attention_backend="torch", max_num_batched_tokens=24, max_num_seqs=4,
                   block_size=8)
    prompts = [{"prompt_token_ids": list(range(3, 3 + n))} for n in (50, 7, 33)]
    together = [o.outputs[0].token_ids for o in llm.generate(prompts, GREEDY)]
    alone = [llm.generate([p], GREEDY)[0].outputs[0].token_ids for p in prompts]  # the second: prefix hits
    assert together == alone


@pytest.mark.parametrize("name,device,expected", [
    ("torch", "cpu", "torch"), ("torch", "cuda", "torch"), ("auto", "meta", "torch"),
])
def test_backend_names_resolve(name, device, expected):
    assert resolve_backend_name(name, device) == expected


def test_auto_picks_the_c_kernels_on_the_cpu():
    assert resolve_backend_name("auto", "cpu") == ("cpu" if kernel.is_available() else "torch")


@pytest.mark.parametrize("name,device", [("flash", "cpu"), ("cpu", "cuda")])
def test_unusable_backends_are_refused_before_loading(name, device, make_llm):
    with pytest.raises(ValidationError, match="attention_backend"):
        resolve_backend_name(name, device)
    with pytest.raises(ValidationError, match="attention_backend"):
        make_llm("llama", "hf", attention_backend="flash")
