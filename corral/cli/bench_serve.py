"""`corral bench serve --base-url URL`: load on any OpenAI-compatible server, measured from outside.

Each request streams `POST {base_url}/v1/completions` with a prompt of `input_len` random token
ids (the API takes a list of ids, so every server sees exactly that many prompt tokens whatever
its tokenizer), `max_tokens = output_len` and `ignore_eos`, which corral, vLLM and llama-server
all honour. `concurrency` requests stay in flight until `num_requests` have finished. One
streamed chunk with a choice is one token (as all three servers send them); the usage block,
when a server sends one, corrects the count.

Reported per concurrency: output tokens/s over the run's wall time, time to first token and
inter-token latency (gaps between chunks) as mean / p50 / p90 / p99 in milliseconds.
"""
from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import time
from dataclasses import dataclass, field

# Ids in this range exist in the vocabulary of every real model corral serves, and are ordinary
# tokens (specials sit at the start or the end of a vocabulary); --token-range changes it.
PROMPT_TOKEN_RANGE = (1000, 5000)


@dataclass
class RequestTiming:
    start: float
    chunk_times: list[float] = field(default_factory=list)
    output_tokens: int = 0
    error: str | None = None


@dataclass(frozen=True)
class ServeBenchResult:
    concurrency: int
    num_requests: int
    failed: int
    elapsed_s: float
    output_tok_s: float
    ttft_ms: tuple[float, float, float, float]  # mean, p50, p90, p99
    itl_ms: tuple[float, float, float, float]


def percentiles(values: list[float]) -> tuple[float, float, float, float]:
    """mean, p50, p90, p99 (nearest rank); zeros for no values."""
    if not values:
        return (0.0, 0.0, 0.0, 0.0)
    ordered = sorted(values)

    def rank(p: float) -> float:
        # The smallest value with at least p of the values at or below it (1e-9: 0.9 * 100 > 90).
        return ordered[min(len(ordered), max(1, math.ceil(p * len(ordered) - 1e-9))) - 1]

    return (statistics.fmean(ordered), rank(0.5), rank(0.9), rank(0.99))


def random_prompt(rng: random.Random, input_len: int, token_range: tuple[int, int]) -> list[int]:
    return [rng.randrange(*token_range) for _ in range(input_len)]


async def _one_request(client, url: str, body: dict, headers: dict) -> RequestTiming:
    timing = RequestTiming(start=time.perf_counter())
    try:
        async with client.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:
                timing.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return timing
            usage_tokens = None
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if chunk.get("usage"):
                    usage_tokens = chunk["usage"].get("completion_tokens")
                # Every chunk with a choice carries one token, even when its text is empty (a
                # token that ends inside a UTF-8 character, as random-weight models often emit).
                if chunk.get("choices"):
                    timing.chunk_times.append(time.perf_counter())
                    timing.output_tokens += 1
            if usage_tokens:
                timing.output_tokens = usage_tokens
    except Exception as e:  # noqa: BLE001 - a failed request is counted, the run goes on
        timing.error = f"{type(e).__name__}: {e}"
    return timing


async def run_load(base_url: str, model: str | None, concurrency: int, num_requests: int,
                   input_len: int, output_len: int, api_key: str | None = None,
                   seed: int = 0, timeout_s: float = 600.0,
                   token_range: tuple[int, int] = PROMPT_TOKEN_RANGE) -> ServeBenchResult:
    """Keep `concurrency` streamed completions in flight until `num_requests` have finished."""
    import httpx

    rng = random.Random(seed)
    url = base_url.rstrip("/") + "/v1/completions"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    bodies = []
    for _ in range(num_requests):
        body = {"prompt": random_prompt(rng, input_len, token_range), "max_tokens": output_len, "temperature": 0,
                "stream": True, "ignore_eos": True, "stream_options": {"include_usage": True}}
        if model:
            body["model"] = model
        bodies.append(body)
    queue: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    timings: list[RequestTiming] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        async def worker() -> None:
            while not queue.empty():
                timings.append(await _one_request(client, url, queue.get_nowait(), headers))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    ok = [t for t in timings if t.error is None and t.chunk_times]
    ttft = [(t.chunk_times[0] - t.start) * 1e3 for t in ok]
    itl = [(b - a) * 1e3 for t in ok for a, b in zip(t.chunk_times, t.chunk_times[1:])]
    return ServeBenchResult(
        concurrency=concurrency, num_requests=num_requests, failed=len(timings) - len(ok),
        elapsed_s=elapsed, output_tok_s=sum(t.output_tokens for t in ok) / elapsed,
        ttft_ms=percentiles(ttft), itl_ms=percentiles(itl),
    )


def add_parser(sub) -> None:
    """Registered as `bench-serve`; `corral bench serve ...` is spelled that way (cli/main.py)."""
    import argparse

    p = sub.add_parser("bench-serve", prog="corral bench serve", help="load a running OpenAI-compatible server (also: corral bench serve)",
                       description="Streamed load on an OpenAI-compatible server: output tok/s, TTFT, ITL.")
    p.add_argument("--base-url", required=True, help="the server, e.g. http://127.0.0.1:11435")
    p.add_argument("--model", default=None, help="model name to send (default: none, the server's own)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1], help="requests in flight (one or more values)")
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--num-requests", type=int, default=None,
                   help="requests per concurrency value (default: 2 x the concurrency, at least 4)")
    p.add_argument("--api-key", default=None)
    p.add_argument("--token-range", type=int, nargs=2, default=list(PROMPT_TOKEN_RANGE), metavar=("LO", "HI"),
                   help="prompt token ids are drawn from [LO, HI) (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=1,
                   help="run the list this many times in turn and print each value's median output tok/s")
    p.add_argument("--json", dest="json_out", default=None, help="also write the results to this JSON file")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    for name in ("input_len", "output_len", "repeats"):
        if getattr(args, name) < 1:
            print(f"corral bench serve: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 2
    lo, hi = args.token_range
    if not 0 <= lo < hi:
        print("corral bench serve: --token-range needs 0 <= LO < HI", file=sys.stderr)
        return 2
    if any(c < 1 for c in args.concurrency):
        print("corral bench serve: every --concurrency value must be at least 1", file=sys.stderr)
        return 2
    print(f"server {args.base_url}  input {args.input_len}  output {args.output_len}")
    print(f"{'conc':>5} {'reqs':>5} {'fail':>5} {'output tok/s':>13} "
          f"{'TTFT ms mean/p50/p90/p99':>28} {'ITL ms mean/p50/p90/p99':>28}")
    # One short request first: no figure is measured on a server's cold first request.
    token_range = (lo, hi)
    asyncio.run(run_load(args.base_url, args.model, 1, 1, args.input_len, 4, args.api_key,
                         token_range=token_range))
    results: list[ServeBenchResult] = []
    for _ in range(args.repeats):
        for c in args.concurrency:
            n = args.num_requests or max(4, 2 * c)
            r = asyncio.run(run_load(args.base_url, args.model, c, n, args.input_len, args.output_len,
                                     args.api_key, token_range=token_range))
            results.append(r)
            print(f"{c:>5} {r.num_requests:>5} {r.failed:>5} {r.output_tok_s:>13.1f} "
                  f"{_fmt(r.ttft_ms):>28} {_fmt(r.itl_ms):>28}", flush=True)
    if args.repeats > 1:
        print(f"median output tok/s over {args.repeats} repeats:")
        for c in args.concurrency:
            print(f"{c:>5} {statistics.median(r.output_tok_s for r in results if r.concurrency == c):>13.1f}")
    if args.json_out:
        from dataclasses import asdict

        with open(args.json_out, "w") as f:
            json.dump([asdict(r) for r in results], f, indent=2)
    return 1 if any(r.failed == r.num_requests for r in results) else 0


def _fmt(t) -> str:
    return "/".join(f"{v:.1f}" for v in t)
