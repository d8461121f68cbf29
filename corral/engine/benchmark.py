"""Offline throughput and latency of the engine on random prompts (what `corral bench` runs)."""
from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass

from corral.core.sampling_params import SamplingParams
from corral.engine.llm_engine import LLMEngine


@dataclass
class BenchResult:
    concurrency: int
    num_requests: int
    input_len: int
    output_len: int
    elapsed_s: float
    prefill_tok_s: float  # prompt tokens / time until every request had its first token
    output_tok_s: float  # generated tokens / total time
    ttft_ms: tuple[float, float, float]  # mean, p50, p99
    tpot_ms: tuple[float, float, float]  # time per output token after the first: mean, p50, p99


def run_benchmark(engine: LLMEngine, concurrency: int, input_len: int, output_len: int,
                  num_requests: int | None = None, seed: int = 0) -> BenchResult:
    """Keep `concurrency` requests in flight until `num_requests` (default: concurrency) finish."""
    rng = random.Random(seed)
    vocab = engine.model_config.vocab_size
    special = set(engine.eos_token_ids)
    num_requests = num_requests or concurrency
    params = SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True)

    def prompt() -> list[int]:
        return [t for t in (rng.randrange(vocab) for _ in range(input_len * 2)) if t not in special][:input_len]

    submitted, finished = 0, []
    times: dict[str, dict] = {}
    start = time.perf_counter()
    while len(finished) < num_requests:
        while submitted < num_requests and submitted - len(finished) < concurrency:
            rid = engine.add_request(prompt(), params)
            times[rid] = {"start": time.perf_counter(), "first": None, "tokens": 0}
            submitted += 1
        for rid in engine.step():
            delta = engine.pop_delta(rid)
            if delta is None:
                continue
            now = time.perf_counter()
            t = times[rid]
            t["first"] = t["first"] or now
            t["tokens"] += sum(len(o.token_ids) for o in delta.outputs)
            if delta.finished:
                t["end"] = now
                finished.append(rid)
    elapsed = time.perf_counter() - start
    ttft = [(t["first"] - t["start"]) * 1e3 for t in times.values()]
    tpot = [(t["end"] - t["first"]) * 1e3 / (t["tokens"] - 1) for t in times.values() if t["tokens"] > 1]
    last_first = max(t["first"] for t in times.values()) - start
    return BenchResult(
        concurrency, num_requests, input_len, output_len, elapsed,
        prefill_tok_s=num_requests * input_len / last_first if concurrency >= num_requests else
        input_len / (statistics.mean(ttft) / 1e3),
        output_tok_s=sum(t["tokens"] for t in times.values()) / elapsed,
        ttft_ms=_summary(ttft),
        tpot_ms=_summary(tpot) if tpot else (0.0, 0.0, 0.0),
    )


def _summary(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.mean(values), statistics.median(values), p99
