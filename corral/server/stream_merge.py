"""Start several generations together and interleave their deltas (a completions request with
a list of prompts). Closing the merged stream closes every generation."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

from corral.core.outputs import RequestOutput
from corral.server.generate_request import GenerateRequest
from corral.server.generation import Generation, start_generation
from corral.server.metrics import ServerMetrics
from corral.server.model_manager import ModelManager

_END = object()


async def start_all(manager: ModelManager, requests: list[GenerateRequest], metrics: ServerMetrics | None,
                    request_id: str) -> list[Generation]:
    """Start every request, or none: if one fails, the started ones are closed and the error raised."""
    started: list[Generation] = []
    try:
        for i, req in enumerate(requests):
            rid = request_id if len(requests) == 1 else f"{request_id}-{i}"
            started.append(await start_generation(manager, req, metrics, rid))
    except BaseException:
        for gen in started:
            await gen.close()
        raise
    return started


async def merged(gens: list[Generation]) -> AsyncIterator[tuple[int, RequestOutput]]:
    """(position in `gens`, delta) pairs in arrival order; re-raises the first generation error."""
    if len(gens) == 1:
        async for delta in gens[0].deltas():
            yield 0, delta
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(i: int, gen: Generation) -> None:
        try:
            async for delta in gen.deltas():
                await queue.put((i, delta))
            await queue.put((i, _END))
        except Exception as e:  # handed to the consumer
            await queue.put((i, e))

    tasks = [asyncio.create_task(pump(i, g)) for i, g in enumerate(gens)]
    try:
        remaining = len(gens)
        while remaining:
            i, item = await queue.get()
            if item is _END:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for gen in gens:
            await gen.close()


async def close_all(gens: list[Generation]) -> None:
    for gen in gens:
        await gen.close()
