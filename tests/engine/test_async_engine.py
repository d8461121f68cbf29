"""The streaming engine: deltas add up to the offline result; leaving early aborts and frees."""
from __future__ import annotations

import asyncio

import pytest

from corral import SamplingParams
from corral.engine.async_engine import AsyncEngine
from corral.errors import ContextLengthError


@pytest.fixture()
def engine(tiny_models):
    eng = AsyncEngine.from_model(tiny_models("qwen2", "Q8_0"), max_model_len=128, kv_cache_memory=8 << 20)
    yield eng
    eng.shutdown()


async def collect(engine, prompt, params, request_id=None):
    texts: dict[int, str] = {}
    tokens: dict[int, list[int]] = {}
    reasons = {}
    async for delta in engine.generate(prompt, params, request_id):
        for o in delta.outputs:
            texts[o.index] = texts.get(o.index, "") + o.text
            tokens.setdefault(o.index, []).extend(o.token_ids)
            if o.finish_reason:
                reasons[o.index] = o.finish_reason
    return texts, tokens, reasons


def test_streamed_deltas_equal_offline_generation(engine, make_llm):
    prompts = ["Once upon a time", "import os\nimport", "数字 and accents: é à", "x"]
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)

    async def main():
        return await asyncio.gather(*(collect(engine, p, params) for p in prompts))

    streamed = asyncio.run(main())
    offline = make_llm("qwen2", "Q8_0", max_model_len=128).generate(prompts, params)
    for (texts, tokens, reasons), out in zip(streamed, offline):
        assert texts[0] == out.outputs[0].text
        assert tokens[0] == out.outputs[0].token_ids
        assert reasons[0] == "length"


def test_closing_the_stream_aborts_and_frees_blocks(engine):
    async def main():
        stream = engine.generate("a long story", SamplingParams(max_tokens=100, ignore_eos=True))
        got = 0
        async for _ in stream:
            got += 1
            if got == 3:
                break
        await stream.aclose()
        for _ in range(200):
            stats = engine.stats()
            if stats.num_running == 0 and stats.num_waiting == 0 and stats.kv_cache_usage == 0:
                return stats
            await asyncio.sleep(0.01)
        return engine.stats()

    stats = asyncio.run(main())
    assert (stats.num_running, stats.num_waiting, stats.kv_cache_usage) == (0, 0, 0)


def test_cancelled_consumer_aborts(engine):
    async def main():
        streaming = asyncio.Event()

        async def consume():
            async for _ in engine.generate("tell me", SamplingParams(max_tokens=1000, ignore_eos=True)):
                streaming.set()
                await asyncio.sleep(0)

        task = asyncio.create_task(consume())
        # Cancel mid-stream: a fixed sleep lets a fast engine fill the 128-token context first.
        await streaming.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):
            if engine.stats().num_running == 0 and engine.stats().kv_cache_usage == 0:
                break
            await asyncio.sleep(0.01)
        return engine.stats()

    stats = asyncio.run(main())
    assert stats.num_running == 0 and stats.kv_cache_usage == 0


def test_too_long_prompt_fails_before_streaming(engine):
    async def main():
        async for _ in engine.generate(list(range(3, 300)), SamplingParams(max_tokens=4)):
            pass

    with pytest.raises(ContextLengthError):
        asyncio.run(main())
    assert engine.stats().num_waiting == 0


def test_n_completions_stream_with_their_index(engine):
    params = SamplingParams(n=2, temperature=1.0, seed=3, max_tokens=6, ignore_eos=True)
    texts, tokens, reasons = asyncio.run(collect(engine, "Hello", params))
    assert set(tokens) == {0, 1} and all(len(t) == 6 for t in tokens.values())
    assert reasons == {0: "length", 1: "length"}


def test_from_model_loads_in_the_engine_thread_and_raises_its_errors(tiny_models, tmp_path):
    """The model is loaded by the thread that steps it (a model stepped by another thread than its
    loader's decoded 30-50% slower); a load that fails raises in the caller, and leaves no thread."""
    import threading

    from corral.engine.async_engine import AsyncEngine
    from corral.errors import CorralError

    loaders = []
    engine = AsyncEngine.from_model(tiny_models("llama31", "hf"), max_model_len=64, max_num_seqs=2,
                                    on_load_progress=lambda done, total: loaders.append(threading.current_thread()))
    try:
        assert loaders and set(loaders) == {engine._thread} and engine.max_model_len == 64
    finally:
        engine.shutdown()
    before = threading.active_count()
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 16)
    with pytest.raises(CorralError):
        AsyncEngine.from_model(broken)
    assert threading.active_count() == before
