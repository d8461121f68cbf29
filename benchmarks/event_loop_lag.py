"""How much the engine thread delays the asyncio event loop that serves HTTP.

A timer on the event loop asks to wake every 5 ms while N streams decode through AsyncEngine;
the lag is how late it wakes (idle loop first, then under load). The engine runs in a thread:
torch releases the GIL inside its kernels, but the Python parts of a step hold it.

    python benchmarks/event_loop_lag.py MODEL --streams 16 --tokens 64
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from corral import SamplingParams
from corral.engine.async_engine import AsyncEngine


async def measure_lag(stop: asyncio.Event, period: float = 0.005) -> list[float]:
    lags = []
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(period)
        lags.append((time.perf_counter() - start - period) * 1e3)
    return lags


async def run(engine: AsyncEngine, streams: int, tokens: int) -> tuple[list[float], list[float]]:
    stop = asyncio.Event()
    idle_task = asyncio.create_task(measure_lag(stop))
    await asyncio.sleep(1.0)
    stop.set()
    idle = await idle_task

    stop = asyncio.Event()
    lag_task = asyncio.create_task(measure_lag(stop))
    params = SamplingParams(temperature=0, max_tokens=tokens, ignore_eos=True)

    async def one(i: int) -> None:
        async for _ in engine.generate([1000 + i] * 64, params):
            pass

    await asyncio.gather(*(one(i) for i in range(streams)))
    stop.set()
    return idle, await lag_task


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    return f"p50 {statistics.median(values):.2f} ms  p99 {p99:.2f} ms  max {max(values):.2f} ms  (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    engine = AsyncEngine.from_model(args.model, max_model_len=256, max_num_seqs=args.streams,
                                    num_threads=args.threads)
    idle, busy = asyncio.run(run(engine, args.streams, args.tokens))
    engine.shutdown()
    print(f"event-loop lag, idle:                      {summary(idle)}")
    print(f"event-loop lag, {args.streams} streams decoding:        {summary(busy)}")


if __name__ == "__main__":
    main()
