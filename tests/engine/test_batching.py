"""Continuous batching, prefix caching, preemption and block accounting on a real tiny model."""
from __future__ import annotations

import random

import pytest
import torch
import transformers

from corral import SamplingParams
from corral.engine import kv_cache
from engine_helpers import hf_greedy

GREEDY = SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)


def prompts_of_lengths(lengths, seed=0):
    rng = random.Random(seed)
    return [{"prompt_token_ids": [rng.randrange(3, 390) for _ in range(n)]} for n in lengths]


def assert_all_blocks_free(llm):
    cache = llm.engine.scheduler.kv_cache
    assert cache.usage == 0
    assert cache.num_free_blocks == llm.engine.scheduler.config.num_blocks


def test_batch_equals_each_alone_and_transformers(make_llm, tiny_models):
    llm = make_llm("qwen2", "hf")
    prompts = prompts_of_lengths([3, 17, 40, 64, 9])
    together = llm.generate(prompts, GREEDY)
    alone = [llm.generate([p], GREEDY)[0] for p in prompts]
    reference = transformers.AutoModelForCausalLM.from_pretrained(tiny_models("qwen2", "hf"), dtype=torch.float64)
    for t, a, p in zip(together, alone, prompts):
        assert t.outputs[0].token_ids == a.outputs[0].token_ids
        assert t.outputs[0].token_ids == hf_greedy(reference, p["prompt_token_ids"], 10)
    assert_all_blocks_free(llm)


def test_decode_without_the_attention_kernel_matches_transformers(make_llm, tiny_models):
    """Decode steps on the gathered torch path (devices and dtypes the CPU kernel does not take)
    give the same tokens as with the kernel, and as transformers; ragged lengths need its mask."""
    llm = make_llm("qwen2", "hf")
    prompts = prompts_of_lengths([3, 40, 17], seed=1)
    with_kernel = llm.generate(prompts, GREEDY)
    llm.engine.runner.backend.use_kernel = False
    gathered = llm.generate(prompts, GREEDY)
    reference = transformers.AutoModelForCausalLM.from_pretrained(tiny_models("qwen2", "hf"), dtype=torch.float64)
    for k, g, p in zip(with_kernel, gathered, prompts):
        assert g.outputs[0].token_ids == k.outputs[0].token_ids == hf_greedy(reference, p["prompt_token_ids"], 10)


def test_chunked_prefill_gives_the_same_tokens(make_llm):
    whole = make_llm("llama31", "hf", max_num_batched_tokens=512)
    chunked = make_llm("llama31", "hf", max_num_batched_tokens=64, max_num_seqs=8)
    prompts = prompts_of_lengths([150, 5, 90])
    a = whole.generate(prompts, GREEDY)
    b = chunked.generate(prompts, GREEDY)
    assert [o.outputs[0].token_ids for o in a] == [o.outputs[0].token_ids for o in b]


def test_prefix_cache_hit_matches_miss_and_computes_less(make_llm):
    llm = make_llm("qwen2", "hf")
    shared = prompts_of_lengths([40])[0]["prompt_token_ids"]
    first = llm.generate([{"prompt_token_ids": shared + [5, 6]}], GREEDY)[0]
    assert first.num_cached_tokens == 0
    sched = llm.engine.scheduler
    hits_before = sched.prefix_cache_hits
    second = llm.generate([{"prompt_token_ids": shared + [7, 8, 9]}], GREEDY)[0]
    # 40 shared tokens = 2 full blocks of 16: 32 tokens come from the cache, 11 are computed.
    assert second.num_cached_tokens == 32
    assert sched.prefix_cache_hits - hits_before == 32
    uncached = make_llm("qwen2", "hf", enable_prefix_caching=False)
    assert second.outputs[0].token_ids == uncached.generate([{"prompt_token_ids": shared + [7, 8, 9]}], GREEDY)[0].outputs[0].token_ids


def test_small_cache_preempts_and_still_matches(make_llm):
    cfg = make_llm("qwen2", "hf").engine.model_config
    per_block = kv_cache.bytes_per_block(cfg, 16, torch.float32)
    params = SamplingParams(temperature=0, max_tokens=30, ignore_eos=True)
    prompts = prompts_of_lengths([20, 25, 30, 18, 22, 27])
    big = make_llm("qwen2", "hf").generate(prompts, params)
    small = make_llm("qwen2", "hf", max_model_len=64, kv_cache_memory=8 * per_block)
    out = small.generate(prompts, params)
    assert small.engine.scheduler.num_preemptions > 0
    assert [o.outputs[0].token_ids for o in out] == [o.outputs[0].token_ids for o in big]
    assert_all_blocks_free(small)


def test_abort_mid_generation_frees_every_block(make_llm):
    llm = make_llm("qwen2", "Q8_0")
    engine = llm.engine
    ids = [engine.add_request(p["prompt_token_ids"], SamplingParams(max_tokens=50, ignore_eos=True))
           for p in prompts_of_lengths([30, 10, 50])]
    for _ in range(5):
        engine.step()
    assert engine.scheduler.kv_usage > 0
    engine.abort(ids[1])
    while engine.has_unfinished() and not all(engine.is_finished(r) for r in (ids[0], ids[2])):
        engine.step()
    for r in (ids[0], ids[2]):
        engine.pop_final(r)
    assert not engine.has_unfinished()
    assert_all_blocks_free(llm)


def test_hundreds_of_mixed_requests_leak_nothing(make_llm):
    llm = make_llm("qwen2", "hf", max_num_seqs=16, kv_cache_memory=2 << 20, max_model_len=128)
    engine, rng = llm.engine, random.Random(1)
    live: list[str] = []
    done = 0
    for i in range(300):
        params = SamplingParams(temperature=rng.choice([0, 0.8]), max_tokens=rng.randint(1, 8), seed=i,
                                stop=rng.choice([[], ["e"], ["the", "in"]]), n=rng.choice([1, 1, 2]))
        live.append(engine.add_request(prompts_of_lengths([rng.randint(1, 60)], seed=i)[0]["prompt_token_ids"], params))
        for _ in range(rng.randint(0, 3)):
            engine.step()
        if live and rng.random() < 0.15:
            engine.abort(live.pop(rng.randrange(len(live))))
        for rid in [r for r in live if engine.is_finished(r)]:
            engine.pop_final(rid)
            live.remove(rid)
            done += 1
    while engine.has_unfinished():
        engine.step()
    for rid in live:
        engine.pop_final(rid)
    assert done > 100
    assert_all_blocks_free(llm)
    assert all(b.ref_cnt == 0 for b in engine.scheduler.kv_cache.blocks)


@pytest.mark.parametrize("fmt", ["hf", "Q4_K_M"])
def test_prompt_that_can_never_fit_is_rejected_at_once(make_llm, fmt):
    from corral.errors import ContextLengthError

    llm = make_llm("qwen2", fmt, max_model_len=64)
    with pytest.raises(ContextLengthError):
        llm.generate([{"prompt_token_ids": list(range(3, 80))}], GREEDY)
    assert not llm.engine.has_unfinished()
