"""A streamed chat with usage ends with llama-server's `timings`: the server's own measure of
prompt and decoding time, which the web app shows as tokens per second."""
from __future__ import annotations

import json

import httpx


def test_the_usage_chunk_carries_the_servers_timings(server):
    body = {"model": server.model, "messages": [{"role": "user", "content": "Count"}], "stream": True,
            "max_tokens": 12, "ignore_eos": True, "temperature": 0, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=120) as r:
        events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:") and "[DONE]" not in line]
    (last,) = [e for e in events if e.get("usage")]
    timings = last["timings"]
    assert timings["predicted_n"] == last["usage"]["completion_tokens"] == 12
    assert timings["prompt_n"] == last["usage"]["prompt_tokens"]
    assert timings["predicted_ms"] > 0 and timings["prompt_ms"] >= 0
    assert abs(timings["predicted_per_second"] - 11 / (timings["predicted_ms"] / 1000)) < 1e-6
    assert all("timings" not in e for e in events if not e.get("usage"))
