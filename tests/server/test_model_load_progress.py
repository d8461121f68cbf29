"""A load's progress and context length: the manager hands each load a ModelLoad the loader reports
into and shows the ones in flight; a request for another context length reloads the model once it
is idle; the real loader reports every weight tensor of a real file."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from corral.server.model_manager import ModelManager
from corral.server.model_source import ResolvedModel


class Source:
    def resolve(self, name: str) -> ResolvedModel:
        return ResolvedModel(name=name, key=name, path=Path("/" + name), kind="gguf", size_bytes=100, modified_at=0.0)

    def list(self):
        return []


class Engine:
    def __init__(self, context_length):
        self.max_model_len, self.memory_bytes, self.stopped = context_length or 512, 100, False

    def shutdown(self):
        self.stopped = True


def test_a_load_in_flight_shows_its_progress_and_goes_when_done():
    reported, release = threading.Event(), threading.Event()

    def load(resolved, progress):
        progress.report(0, 10)
        progress.report(4, 10)
        reported.set()
        release.wait(10)
        progress.report(10, 10)
        return Engine(progress.context_length)

    async def go():
        manager = ModelManager(Source(), load)
        task = asyncio.create_task(manager.load("m", context_length=64))
        await asyncio.to_thread(reported.wait, 10)
        (shown,) = manager.loading()
        assert shown.to_json() | {"started_at": 0} == {"name": "m", "context_length": 64, "stage": "weights",
                                                       "done": 4, "total": 10, "fraction": 0.4, "started_at": 0}
        release.set()
        model = await task
        assert manager.loading() == [] and model.context_length == 64
    asyncio.run(go())


def test_another_context_length_reloads_once_idle_and_keeps_the_pin():
    contexts = []

    def load(resolved, progress):
        contexts.append(progress.context_length)
        return Engine(progress.context_length)

    async def go():
        manager = ModelManager(Source(), load)
        first = await manager.load("m", pin=True)
        busy = await manager.acquire("m")  # a request in flight on the first copy
        assert busy is first
        same = await manager.acquire("m", 512)  # the length it already has: no reload
        manager.release(same)
        waiting = asyncio.create_task(manager.acquire("m", 128))
        await asyncio.sleep(0.05)
        assert not waiting.done() and not first.engine.stopped  # waits for the request to end
        manager.release(busy)
        second = await asyncio.wait_for(waiting, 10)
        assert first.engine.stopped and second.context_length == 128 and second.pinned
        manager.release(second)
        assert await manager.acquire("m") is second  # no length asked: whatever is loaded
    asyncio.run(go())
    assert contexts == [None, 128]


def test_the_real_loader_reports_every_tensor_of_a_gguf(tiny_models):
    from corral.engine.engine_args import EngineArgs
    from corral.engine.loading import load_model
    from corral.loader.gguf_file import GGUFFile

    path = tiny_models("qwen2", "Q8_0")
    seen: list[tuple[int, int]] = []
    load_model(EngineArgs(model=str(path), max_model_len=64), lambda done, total: seen.append((done, total)))
    total = len(GGUFFile(path).tensors)
    assert seen[0] == (0, total) and seen[-1][0] >= total - 2  # a family may merge or drop a couple
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
