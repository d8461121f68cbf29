"""Pinned models survive their requests' keep_alive; unloaded or forgotten busy models go when
their last request ends; a forgotten model serves no new request (fake engines, as in
test_model_manager)."""
from __future__ import annotations

import asyncio
import math

from test_model_manager import make, run


def test_a_pinned_model_stays_loaded_whatever_its_requests_say():
    async def go():
        manager, loads, clock = make(keep=60)
        pinned = await manager.load("a", pin=True)
        for keep in (None, 5.0, 0):
            manager.release(await manager.acquire("a"), keep_alive=keep)
            assert manager.find_loaded("a") is pinned and math.isinf(pinned.expires_at)
        clock.now += 10_000
        manager.reap()
        assert manager.find_loaded("a") is pinned and loads == ["a"]
        assert manager.unload("a") and manager.find_loaded("a") is None and pinned.engine.stopped
    run(go())


def test_unloading_a_busy_model_survives_the_keep_alive_of_its_last_request():
    async def go():
        manager, _, _ = make(keep=60)
        busy = await manager.acquire("a")
        assert manager.unload("a") and not busy.engine.stopped
        manager.release(busy, keep_alive=3600)
        assert manager.find_loaded("a") is None and busy.engine.stopped
    run(go())


def test_a_forgotten_busy_model_finishes_its_requests_but_takes_no_new_ones():
    async def go():
        manager, loads, _ = make()
        old = await manager.acquire("a")
        assert manager.forget("a")
        assert manager.find_loaded("a") is None and not old.engine.stopped
        new = await manager.acquire("a")  # loads the store's current files afresh
        assert new is not old and loads == ["a", "a"]
        manager.release(old, keep_alive=-1)
        assert old.engine.stopped and not new.engine.stopped
        manager.release(new)
        assert manager.find_loaded("a") is new
        assert not manager.forget("missing")
    run(go())


def test_forgetting_an_idle_model_unloads_it_at_once():
    async def go():
        manager, _, _ = make()
        idle = await manager.load("a", keep_alive=-1)
        assert manager.forget("a") and idle.engine.stopped and manager.loaded() == []
        await asyncio.sleep(0)
    run(go())
