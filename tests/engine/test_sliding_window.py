"""A model whose every layer has a sliding window (Phi-3 here, as Mistral) releases the KV blocks
behind the window as requests advance, and still gives transformers' greedy tokens: with chunked
prefill, batching, and a prefix-cache hit whose oldest blocks are behind the window."""
from __future__ import annotations

import pytest
import torch
import transformers

from corral import SamplingParams
from engine_helpers import hf_greedy

WINDOW, BLOCK = 24, 16  # the phi3 fixture's window; the engine's default block size
NEW_TOKENS = 30
PROMPTS = [[(i * 7) % 300 + 3 for i in range(40)], list(range(3, 30))]


@pytest.fixture(scope="module")
def expected(tiny_models):
    reference = transformers.AutoModelForCausalLM.from_pretrained(
        tiny_models("phi3", "hf"), dtype=torch.float64, attn_implementation="eager")
    return [hf_greedy(reference, p, NEW_TOKENS) for p in PROMPTS]


def test_long_generation_holds_the_window_only_and_matches_transformers(make_llm, expected, monkeypatch):
    llm = make_llm("phi3", "hf", max_num_batched_tokens=16, max_num_seqs=4)
    kv = llm.engine.scheduler.kv_cache
    assert kv.sliding_window == WINDOW
    held: list[int] = []
    allocate = kv.allocate_slots
    monkeypatch.setattr(kv, "allocate_slots", lambda *a: allocate(*a) and not held.append(kv.num_held_blocks))
    greedy = SamplingParams(temperature=0, max_tokens=NEW_TOKENS, ignore_eos=True)
    outputs = llm.generate([{"prompt_token_ids": p} for p in PROMPTS], greedy)
    assert [o.outputs[0].token_ids for o in outputs] == expected
    # a step's chunk of at most 16 tokens and the 23 positions behind it span at most 4 blocks a
    # request, a decode and those behind it 3, where keeping everything would take 5 and 4 by the end
    assert max(held) <= 2 * 4 and held[-1] <= 2 * 3

    again = llm.generate([{"prompt_token_ids": PROMPTS[0]}], greedy)[0]
    assert again.num_cached_tokens == 32  # two full blocks hit; the first is behind the window
    assert again.outputs[0].token_ids == expected[0]

    llm.engine.runner.backend.use_kernel = False  # torch gathers released slots too, then masks them
    outputs = llm.generate([{"prompt_token_ids": p} for p in PROMPTS], greedy)
    assert [o.outputs[0].token_ids for o in outputs] == expected


def test_models_with_global_layers_release_nothing(make_llm):
    llm = make_llm("gemma2", "hf")
    assert llm.engine.scheduler.kv_cache.sliding_window is None


def test_a_sequence_longer_than_the_cache_runs_behind_the_window(make_llm, expected, tiny_models):
    """A cache of 4 blocks (64 positions) holds what one request needs at once (the window behind a
    step of up to 16 tokens), so a 70-token sequence runs, and a 200-token prompt is accepted."""
    from corral.engine.kv_cache import bytes_per_block
    from corral.loader.weights import load_model_source

    per_block = bytes_per_block(load_model_source(tiny_models("phi3", "hf")).config, BLOCK, torch.float32)
    llm = make_llm("phi3", "hf", max_num_batched_tokens=16, max_num_seqs=1, kv_cache_memory=4 * per_block)
    assert llm.engine.scheduler.kv_cache.num_blocks == 4
    greedy = SamplingParams(temperature=0, max_tokens=NEW_TOKENS, ignore_eos=True)
    out = llm.generate([{"prompt_token_ids": PROMPTS[0]}], greedy)[0]
    assert len(PROMPTS[0]) + NEW_TOKENS > 4 * BLOCK and out.outputs[0].token_ids == expected[0]
    long = llm.generate([{"prompt_token_ids": list(range(3, 203))}], SamplingParams(temperature=0, max_tokens=2))[0]
    assert len(long.outputs[0].token_ids) == 2
