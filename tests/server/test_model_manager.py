"""Model manager rules: load once, reference counts, keep-alive, memory budget (fake engines:
the manager never looks inside an engine beyond memory_bytes and shutdown)."""
from __future__ import annotations

import asyncio
import math
import threading
import time
from pathlib import Path

import pytest

from corral.errors import ModelNotFoundError
from corral.server.model_manager import ModelManager
from corral.server.model_source import ResolvedModel


class Source:
    def resolve(self, name: str) -> ResolvedModel:
        if name.startswith("missing"):
            raise ModelNotFoundError(f"model '{name}' not found")
        return ResolvedModel(name=name, key=name, path=Path("/" + name), kind="gguf", size_bytes=100, modified_at=0.0)

    def list(self):
        return []


class Engine:
    def __init__(self, name: str):
        self.name, self.memory_bytes, self.stopped = name, 100, False

    def shutdown(self):
        self.stopped = True


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make(budget=None, keep=300.0):
    loads: list[str] = []

    def load(resolved, progress):
        loads.append(resolved.name)
        time.sleep(0.01)
        return Engine(resolved.name)

    clock = Clock()
    return ModelManager(Source(), load, memory_budget=budget, default_keep_alive=keep, clock=clock), loads, clock


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_load_once_and_count_references():
    async def go():
        manager, loads, _ = make()
        models = await asyncio.gather(*(manager.acquire("a") for _ in range(5)))
        assert loads == ["a"] and all(m is models[0] for m in models) and models[0].refs == 5
        for m in models:
            manager.release(m)
        assert models[0].refs == 0 and manager.find_loaded("a") is models[0]
    run(go())


def test_busy_model_is_never_unloaded_and_keep_alive_zero_unloads_when_idle():
    async def go():
        manager, _, clock = make()
        a1 = await manager.acquire("a")
        a2 = await manager.acquire("a")
        manager.release(a1, keep_alive=0)
        assert manager.find_loaded("a") is a1  # a2 still in flight
        clock.now += 10_000
        manager.reap()
        assert manager.find_loaded("a") is a1
        manager.release(a2, keep_alive=0)
        assert manager.find_loaded("a") is None and a1.engine.stopped
    run(go())


def test_keep_alive_expiry_and_forever():
    async def go():
        manager, _, clock = make(keep=60)
        manager.release(await manager.acquire("a"))
        manager.release(await manager.acquire("b"), keep_alive=-1)
        assert manager.find_loaded("a").expires_at == clock.now + 60
        assert math.isinf(manager.find_loaded("b").expires_at)
        clock.now += 61
        manager.reap()
        assert manager.find_loaded("a") is None and manager.find_loaded("b") is not None
    run(go())


def test_memory_budget_unloads_least_recently_used_idle_model():
    async def go():
        manager, loads, _ = make(budget=250)
        a = await manager.load("a")
        await asyncio.sleep(0.001)
        await manager.load("b")
        await asyncio.sleep(0.001)
        manager.release(await manager.acquire("a"))  # a is now the most recently used
        await manager.load("c")
        assert {m.name for m in manager.loaded()} == {"a", "c"} and loads == ["a", "b", "c"]
        assert not a.engine.stopped
    run(go())


def test_memory_budget_waits_for_a_busy_model():
    async def go():
        manager, _, _ = make(budget=150)
        a = await manager.acquire("a")
        loading = asyncio.create_task(manager.acquire("b"))
        await asyncio.sleep(0.05)
        assert not loading.done() and manager.find_loaded("b") is None
        manager.release(a)
        b = await asyncio.wait_for(loading, 5)
        assert b.name == "b" and manager.find_loaded("a") is None
    run(go())


def test_unknown_model_and_failed_load_raise_and_leave_nothing_behind():
    async def go():
        manager, _, _ = make()
        with pytest.raises(ModelNotFoundError):
            await manager.acquire("missing")

        def broken(resolved, progress):
            raise RuntimeError("bad file")

        manager.load_engine = broken
        with pytest.raises(RuntimeError):
            await manager.acquire("x")
        assert manager.loaded() == [] and manager._loading == {}
    run(go())


def test_load_runs_off_the_event_loop():
    async def go():
        threads = []
        manager, _, _ = make()
        manager.load_engine = lambda r, progress: threads.append(threading.current_thread()) or Engine(r.name)
        await manager.load("a")
        assert threads and threads[0] is not threading.main_thread()
    run(go())
