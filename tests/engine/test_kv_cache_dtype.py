"""The KV cache's element type: float16 by default for quantized weights (as llama.cpp keeps it),
float32 for dense ones, either on request; a float16 cache batches, preempts and decodes like a
float32 one."""
from __future__ import annotations

import random

import pytest
import torch

from corral import SamplingParams
from corral.engine import kv_cache
from corral.errors import ValidationError
from engine_helpers import rel_error

GREEDY = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)


def _prompts(lengths, seed=0):
    rng = random.Random(seed)
    return [{"prompt_token_ids": [rng.randrange(3, 390) for _ in range(n)]} for n in lengths]


def _cache_dtypes(llm) -> set[torch.dtype]:
    return {c.dtype for c in llm.engine.runner.kv_caches}


@pytest.mark.parametrize(
    "fmt,kwargs,expected",
    [
        ("Q8_0", {}, torch.float16),  # weights kept quantized
        ("Q4_K_M", {}, torch.float16),
        ("hf", {}, torch.float32),
        ("Q8_0", {"keep_quantized": False}, torch.float32),  # dequantized: dense float32 weights
        ("Q8_0", {"kv_cache_dtype": "float32"}, torch.float32),
        ("hf", {"kv_cache_dtype": "float16"}, torch.float16),
    ],
)
def test_auto_and_explicit_choices(make_llm, fmt, kwargs, expected):
    llm = make_llm("qwen2", fmt, **kwargs)
    assert _cache_dtypes(llm) == {expected}
    assert llm.engine.kv_cache_dtype == expected


def test_the_same_memory_holds_twice_the_blocks(make_llm):
    cfg = make_llm("qwen2", "hf").engine.model_config
    budget = 64 * kv_cache.bytes_per_block(cfg, 16, torch.float32)
    half = make_llm("qwen2", "hf", kv_cache_memory=budget, kv_cache_dtype="float16").engine
    full = make_llm("qwen2", "hf", kv_cache_memory=budget, kv_cache_dtype="float32").engine
    assert half.scheduler.config.num_blocks == 2 * full.scheduler.config.num_blocks == 128
    assert half.kv_cache_bytes == full.kv_cache_bytes


def test_unknown_dtype_is_a_validation_error(make_llm):
    with pytest.raises(ValidationError, match="kv_cache_dtype"):
        make_llm("qwen2", "hf", kv_cache_dtype="int8")


def test_float16_logits_stay_close_to_float32(make_llm):
    ids = _prompts([40])[0]["prompt_token_ids"]
    exact = make_llm("llama31", "hf", kv_cache_dtype="float32").engine.prompt_logits(ids)
    half = make_llm("llama31", "hf", kv_cache_dtype="float16").engine.prompt_logits(ids)
    assert 0 < rel_error(half, exact) <= 2e-3  # float16 rounding of K and V, nothing more


@pytest.mark.parametrize("use_kernel", [True, False])
def test_float16_batch_equals_each_alone_and_survives_preemption(make_llm, use_kernel):
    # Decode goes through the C kernel or (use_kernel=False) the gathered torch path.
    prompts = _prompts([20, 3, 31, 9, 26, 17], seed=2)
    llm = make_llm("qwen2", "Q8_0")
    llm.engine.runner.backend.use_kernel = use_kernel
    together = llm.generate(prompts, GREEDY)
    alone = [llm.generate([p], GREEDY)[0] for p in prompts]
    assert [t.outputs[0].token_ids for t in together] == [a.outputs[0].token_ids for a in alone]
    cfg = llm.engine.model_config
    small = make_llm("qwen2", "Q8_0", max_model_len=64, kv_cache_memory=6 * kv_cache.bytes_per_block(cfg, 16, torch.float16))
    small.engine.runner.backend.use_kernel = use_kernel
    out = small.generate(prompts, GREEDY)
    assert small.engine.scheduler.num_preemptions > 0
    assert [o.outputs[0].token_ids for o in out] == [t.outputs[0].token_ids for t in together]
    cache = small.engine.scheduler.kv_cache
    assert cache.usage == 0 and cache.num_free_blocks == small.engine.scheduler.config.num_blocks
