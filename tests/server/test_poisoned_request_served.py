"""A request that makes the model step raise fails with a clear error; the requests it joined on
the same model finish with the output they have when run alone."""
from __future__ import annotations

import json
import threading
import time

import httpx

from corral import SamplingParams
from corral.engine import model_runner

POISON_SEED = 666
PROMPTS = ["The quick brown fox", "Once upon a time", "import numpy as"]
MAX_TOKENS = 160


def test_a_poisoned_request_fails_alone_and_the_batch_it_joined_is_unchanged(server, reference_llm, monkeypatch):
    greedy = SamplingParams(temperature=0, max_tokens=MAX_TOKENS, ignore_eos=True)
    alone = [out.outputs[0].text for out in reference_llm.generate(PROMPTS, greedy)]
    real = model_runner._sampling_batch
    batch_sizes_with_poison: list[int] = []

    def sampling_batch(requests, device):  # the fault: only inside the step, only for the poisoned request
        if any(r.sampling_params.seed == POISON_SEED for r in requests):
            batch_sizes_with_poison.append(len(requests))
            raise RuntimeError("injected fault")
        return real(requests, device)

    monkeypatch.setattr(model_runner, "_sampling_batch", sampling_batch)
    engine = server.engine()
    results: dict[int, httpx.Response] = {}

    def complete(i: int) -> None:
        body = {"model": server.model, "prompt": PROMPTS[i], "max_tokens": MAX_TOKENS, "temperature": 0,
                "ignore_eos": True}
        results[i] = httpx.post(server.url + "/v1/completions", json=body, timeout=120)

    threads = [threading.Thread(target=complete, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    while engine.stats().num_running < len(PROMPTS) and any(t.is_alive() for t in threads):
        time.sleep(0.002)
    poisoned = {"model": server.model, "messages": [{"role": "user", "content": "Hello"}], "temperature": 0,
                "seed": POISON_SEED, "max_tokens": 8}
    openai_reply = httpx.post(server.url + "/v1/chat/completions", json=poisoned, timeout=120)
    ollama_reply = httpx.post(server.url + "/api/generate", json={
        "model": server.model, "prompt": "Hello", "stream": False, "options": {"seed": POISON_SEED}}, timeout=120)
    for t in threads:
        t.join()

    assert openai_reply.status_code == 500 and "injected fault" in openai_reply.json()["error"]["message"]
    assert openai_reply.json()["error"]["code"] == "generation_failed"
    assert ollama_reply.status_code == 500 and "injected fault" in ollama_reply.json()["error"]
    assert batch_sizes_with_poison and max(batch_sizes_with_poison) > 1  # it did join a running batch
    texts = [results[i].json()["choices"][0]["text"] for i in range(len(PROMPTS))]
    assert texts == alone
    assert engine.stats().num_running == 0 and engine.stats().kv_cache_usage == 0


def test_a_request_failing_mid_stream_ends_its_stream_with_an_error_line(server, monkeypatch):
    real = model_runner._sampling_batch

    def sampling_batch(requests, device):  # fails once the poisoned request has three tokens
        if any(r.sampling_params.seed == POISON_SEED and len(r.generated_token_ids) >= 3 for r in requests):
            raise RuntimeError("injected fault")
        return real(requests, device)

    monkeypatch.setattr(model_runner, "_sampling_batch", sampling_batch)
    body = {"model": server.model, "prompt": "Hello", "raw": True,
            "options": {"seed": POISON_SEED, "num_predict": 50, "temperature": 0}}
    with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=120) as r:
        assert r.status_code == 200
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert "injected fault" in lines[-1]["error"] and set(lines[-1]) == {"error"}
    assert all("response" in line and not line["done"] for line in lines[:-1])
    chat = httpx.post(server.url + "/v1/chat/completions", timeout=120, json={
        "model": server.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert chat.status_code == 200  # the engine goes on
