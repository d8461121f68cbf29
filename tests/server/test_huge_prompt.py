"""A multi-megabyte prompt is refused for its length without stalling the server for anyone else."""
from __future__ import annotations

import threading
import time

import httpx

HEALTH_BOUND_S = 2.0  # generous: a stalled event loop answered /health after ~7 s


def health_latencies_while(health_url: str, send) -> tuple[httpx.Response, list[float]]:
    """Run `send()` in a thread and probe /health until it returns; (its response, latencies)."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", send()))
    thread.start()
    latencies = []
    with httpx.Client(timeout=30) as client:
        while thread.is_alive():
            start = time.monotonic()
            assert client.get(health_url).status_code == 200
            latencies.append(time.monotonic() - start)
            time.sleep(0.01)
    thread.join()
    return result["r"], latencies


def test_health_stays_responsive_while_huge_prompts_are_refused(server):
    huge = "The quick brown fox jumps over the lazy dog. " * ((8 << 20) // 45)  # about 8 MB
    requests = [
        ("/api/generate", {"model": server.model, "prompt": huge, "stream": False}),
        ("/v1/chat/completions", {"model": server.model, "messages": [{"role": "user", "content": huge}]}),
        ("/v1/completions", {"model": server.model, "prompt": huge}),
    ]
    for path, body in requests:
        response, latencies = health_latencies_while(
            server.url + "/health", lambda: httpx.post(server.url + path, json=body, timeout=120))
        assert response.status_code == 400, response.text[:300]
        assert "context" in response.text and "shorten the prompt" in response.text
        assert latencies and max(latencies) < HEALTH_BOUND_S, (path, max(latencies))
    ok = httpx.post(server.url + "/api/generate", json={"model": server.model, "prompt": "Hi", "stream": False,
                                                        "options": {"num_predict": 2}}, timeout=60)
    assert ok.status_code == 200 and ok.json()["eval_count"] >= 1
