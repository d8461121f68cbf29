"""Requests come and go: disconnects free their KV blocks, many streams run at once, models
load and unload on keep-alive, and /metrics follows along."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import ollama
import openai
from prometheus_client.parser import text_string_to_metric_families

from corral.core.sampling_params import SamplingParams
from server_harness import API_KEY, wait_until


def idle(engine) -> bool:
    stats = engine.stats()
    return stats.num_running == 0 and stats.num_waiting == 0 and stats.kv_cache_usage == 0


def test_client_disconnect_mid_stream_aborts_and_frees_the_request(server):
    engine = server.engine()
    assert wait_until(lambda: idle(engine))
    body = {"model": server.model, "prompt": "The quick brown fox", "max_tokens": 200, "stream": True,
            "ignore_eos": True, "temperature": 0}
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", server.url + "/v1/completions", json=body) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("data: "):
                    break
            assert engine.stats().num_running == 1
    assert wait_until(lambda: idle(engine)), engine.stats()
    assert server.state.manager.find_loaded(server.model).refs == 0


def test_ollama_disconnect_mid_stream_frees_the_request(server):
    engine = server.engine()
    body = {"model": server.model, "prompt": "Hello", "options": {"num_predict": 200}}
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", server.url + "/api/generate", json=body) as response:
            first = json.loads(next(response.iter_lines()))
            assert first["done"] is False
    assert wait_until(lambda: idle(engine)), engine.stats()


def test_client_giving_up_on_a_whole_response_aborts_it(server):
    engine = server.engine()
    body = {"model": server.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 240,
            "ignore_eos": True}
    try:
        httpx.post(server.url + "/v1/chat/completions", json=body, timeout=0.3)
    except httpx.TimeoutException:
        pass
    else:
        pytest.skip("finished within the timeout: nothing to abort on this machine")
    assert wait_until(lambda: idle(engine)), engine.stats()
    assert server.state.manager.find_loaded(server.model).refs == 0


def test_32_concurrent_streams_complete_independently(server, reference_llm):
    prompts = [f"Numbers {i} {i + 1} {i * 7}" for i in range(32)]
    params = SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)
    expected = [r.outputs[0].text for r in reference_llm.generate(prompts, params)]

    async def one(client: openai.AsyncOpenAI, prompt: str) -> tuple[str, int]:
        stream = await client.completions.create(model=server.model, prompt=prompt, max_tokens=10, temperature=0,
                                                 stream=True, stream_options={"include_usage": True},
                                                 extra_body={"ignore_eos": True})
        text, usage = "", None
        async for chunk in stream:
            text += "".join(c.text for c in chunk.choices)
            usage = chunk.usage or usage
        return text, usage.completion_tokens

    async def all_of_them():
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as client:
            return await asyncio.gather(*(one(client, p) for p in prompts))

    results = asyncio.run(all_of_them())
    assert [text for text, _ in results] == expected
    assert all(n == 10 for _, n in results)
    assert wait_until(lambda: idle(server.engine()))


def test_metrics_parse_and_move(server):
    def scrape() -> dict:
        text = httpx.get(server.url + "/metrics").text
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                out[key] = s.value
        return out

    model = (("model", server.model),)
    before = scrape()
    reply = openai.OpenAI(base_url=server.url + "/v1", api_key="x").completions.create(
        model=server.model, prompt="Hello", max_tokens=5, extra_body={"ignore_eos": True})
    after = scrape()
    grew = lambda name: after.get((name, model), 0) - before.get((name, model), 0)
    assert grew("corral_prompt_tokens_total") == reply.usage.prompt_tokens
    assert grew("corral_generation_tokens_total") == 5
    assert grew("corral_time_to_first_token_seconds_count") == 1
    assert grew("corral_time_per_output_token_seconds_count") == 1
    ok = ("corral_http_requests_total", (("route", "/v1/completions"), ("status", "200")))
    assert after[ok] - before.get(ok, 0) == 1
    assert after[("corral_num_requests_running", model)] == 0
    assert after[("corral_kv_cache_usage_ratio", model)] == 0


def test_keep_alive_loads_on_demand_and_unloads(keyed_server):
    client = ollama.Client(host=keyed_server.url, headers={"Authorization": f"Bearer {API_KEY}"})
    assert client.ps().models == []
    loaded = client.generate(model=keyed_server.model, prompt="")  # empty prompt: just load
    assert loaded.done_reason == "load" and [m.model for m in client.ps().models] == [keyed_server.model]
    client.generate(model=keyed_server.model, prompt="Hi", options={"num_predict": 2}, keep_alive=0)
    assert wait_until(lambda: client.ps().models == [])
    client.chat(model=keyed_server.model, messages=[{"role": "user", "content": "Hi"}],
                options={"num_predict": 2}, keep_alive="1s")
    assert [m.model for m in client.ps().models] == [keyed_server.model]
    assert wait_until(lambda: client.ps().models == [], timeout_s=10)  # the reaper unloads it
    client.generate(model=keyed_server.model, prompt="", keep_alive=-1)
    assert client.ps().models[0].expires_at.year > 2200
    assert client.generate(model=keyed_server.model, prompt="", keep_alive=0).done_reason == "unload"
    assert client.ps().models == []
