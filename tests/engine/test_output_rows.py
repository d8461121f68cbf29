"""The last layer computes its output projection and MLP only for the tokens that sample
(`ForwardBatch.output_rows`): their hidden states, and every token's K/V in the cache, are the
same as when every row is computed."""
from __future__ import annotations

import pytest
import torch
from fixtures.tiny_models import GGUF_ARCHS, HF_ONLY_ARCHS

from corral import SamplingParams
from corral.core.request import Request
from corral.core.scheduler_output import ScheduledRequest


def _chunks(engine, prompts: dict[str, tuple[list[int], int]]) -> list[ScheduledRequest]:
    """One chunk per request: its first `n` prompt tokens, sampling when that is all of them."""
    cache = engine.scheduler.kv_cache
    chunks = []
    for rid, (ids, n) in prompts.items():
        request = Request(rid, ids, SamplingParams(max_tokens=1))
        assert cache.allocate_slots(request, n)
        chunks.append(ScheduledRequest(rid, ids[:n], 0, cache.get_block_ids(rid), n == len(ids),
                                       request.sampling_params))
    return chunks


def _forward(runner, chunks, rows):
    batch = runner._prepare(chunks)
    batch.output_rows = rows
    with torch.inference_mode():
        hidden = runner.model(batch)
    return hidden, [c.clone() for c in runner.kv_caches]


@pytest.mark.parametrize("arch,fmt", [(a, f) for a in GGUF_ARCHS for f in ("F32", "Q4_0")]
                         + [(a, "hf") for a in HF_ONLY_ARCHS])
def test_output_rows_give_the_same_states_and_cache(arch, fmt, make_llm):
    engine = make_llm(arch, fmt, keep_quantized=True).engine
    chunks = _chunks(engine, {
        "a": (list(range(3, 23)), 20),  # a whole prompt: samples at its last token, row 19
        "b": (list(range(40, 70)), 11),  # the first chunk of a longer prompt: no sample
        "c": (list(range(5, 12)), 7),  # samples at row 20 + 11 + 6 = 37
    })
    for c in engine.runner.kv_caches:
        c.zero_()
    full, full_cache = _forward(engine.runner, chunks, None)
    assert full.shape[0] == 38
    for c in engine.runner.kv_caches:
        c.zero_()
    picked, cache = _forward(engine.runner, chunks, torch.tensor([19, 37]))
    assert picked.shape == (2, full.shape[1])
    torch.testing.assert_close(picked, full[[19, 37]], rtol=1e-5, atol=1e-5)
    for a, b in zip(cache, full_cache):
        assert torch.equal(a, b)
    for c in engine.runner.kv_caches:
        c.zero_()
    none, cache = _forward(engine.runner, chunks, torch.tensor([], dtype=torch.long))
    assert none.shape == (0, full.shape[1])
    for a, b in zip(cache, full_cache):
        assert torch.equal(a, b)


def test_chunked_prompt_generates_as_one_chunk(make_llm):
    # A prompt in chunks of 8 (no sample until the last) against the same prompt in one step.
    prompt = list(range(3, 43))
    params = SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)
    whole = make_llm("qwen2", "Q4_0", keep_quantized=True).generate([{"prompt_token_ids": prompt}], params)[0].outputs[0].token_ids
    chunked = make_llm("qwen2", "Q4_0", keep_quantized=True, max_num_batched_tokens=8)
    assert chunked.generate([{"prompt_token_ids": prompt}], params)[0].outputs[0].token_ids == whole
