"""Loaded models: load on first use, reference counts, keep-alive timers, a memory budget.

Rules the manager keeps:
- a model with requests in flight (`refs > 0`) is never unloaded;
- an idle model is unloaded when its keep-alive runs out (`reap`, called every second by `run_reaper`),
  at once when a request ends with keep_alive 0, never when keep_alive is negative;
- a pinned model (named on `corral serve`) stays loaded whatever keep_alive its requests carry;
  only an explicit `unload` (or `forget`) ends it;
- a model unloaded or forgotten while busy goes when its last request ends, whatever that
  request's keep_alive; a forgotten model (its store name was removed or changed) serves no new
  request from the moment it is forgotten;
- a request that asks for a context length (Ollama's `num_ctx`) other than the loaded copy's
  reloads the model at that length once the copy is idle (as Ollama does); a pinned model stays
  pinned through the reload; requests that ask for none use whatever copy is loaded;
- before loading a model that does not fit the memory budget, idle models are unloaded least
  recently used first; if busy models still leave no room, the load waits for one to go idle.
  A model alone over the budget still loads (the engine then fails if memory really runs out).
All methods run on the event loop; engine loading runs in a worker thread.
"""
from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from corral.server.generate_request import MAX_KEEP_ALIVE_S
from corral.server.model_load import ModelLoad
from corral.server.model_source import ModelSource, ResolvedModel

DEFAULT_KEEP_ALIVE_S = 300.0
# (model, the load: its context length, and where the loader reports progress) -> engine
EngineLoader = Callable[[ResolvedModel, ModelLoad], Any]


@dataclass(eq=False)
class LoadedModel:
    resolved: ResolvedModel
    engine: Any  # corral.engine.async_engine.AsyncEngine
    size_bytes: int
    refs: int = 0
    expires_at: float = math.inf  # unix seconds; inf = never
    last_used: float = field(default_factory=time.monotonic)
    pinned: bool = False  # loaded by the operator (`corral serve MODEL`): requests' keep_alive is ignored
    unload_when_idle: bool = False  # unloaded or forgotten while busy

    @property
    def name(self) -> str:
        return self.resolved.name

    @property
    def context_length(self) -> int | None:
        return getattr(self.engine, "max_model_len", None)


class ModelManager:
    def __init__(
        self,
        source: ModelSource,
        load_engine: EngineLoader,
        memory_budget: int | None = None,
        default_keep_alive: float = DEFAULT_KEEP_ALIVE_S,
        clock: Callable[[], float] = time.time,
    ):
        self.source = source
        self.load_engine = load_engine
        self.memory_budget = memory_budget
        self.default_keep_alive = default_keep_alive
        self.clock = clock
        self._models: dict[str, LoadedModel] = {}
        self._loading: dict[str, asyncio.Task] = {}
        self._loads: dict[str, ModelLoad] = {}  # key -> the load in flight, for progress
        self._idle = asyncio.Condition()

    def loaded(self) -> list[LoadedModel]:
        """Loaded models, most recently used first."""
        return sorted(self._models.values(), key=lambda m: m.last_used, reverse=True)

    def find_loaded(self, name: str) -> LoadedModel | None:
        for model in self._models.values():
            if model.name == name or model.resolved.key == name:
                return model
        return None

    def loading(self) -> list[ModelLoad]:
        """Loads in flight, oldest first."""
        return sorted(self._loads.values(), key=lambda load: load.started_at)

    def resolve(self, name: str) -> ResolvedModel:
        """The loaded model's description, else the source's (raises ModelNotFoundError)."""
        model = self.find_loaded(name)
        return model.resolved if model else self.source.resolve(name)

    async def acquire(self, name: str, context_length: int | None = None) -> LoadedModel:
        """The model called `name`, loaded if needed, with one more reference; pair with `release`.
        With `context_length`, a copy loaded at another length is reloaded at this one once idle.

        A load runs as its own task: a caller cancelled while waiting does not cancel it."""
        while True:
            model = self.find_loaded(name)
            if model is None:
                resolved = self.source.resolve(name)
                model = self._models.get(resolved.key)  # the same files under another name
            else:
                resolved = model.resolved
            pinned = False
            if model is not None and context_length and model.context_length not in (None, context_length):
                if model.refs > 0:  # in use at another length: reload once it is idle
                    async with self._idle:
                        await self._idle.wait()
                    continue
                pinned = model.pinned
                self._unload(model)
                model = None
            if model is not None:
                model.refs += 1
                model.last_used = time.monotonic()
                return model
            task = self._loading.get(resolved.key)
            if task is None:
                load = ModelLoad(resolved.name, context_length)
                task = self._loading[resolved.key] = asyncio.create_task(self._load(resolved, load, pinned))
                task.add_done_callback(lambda _t, key=resolved.key: self._loading.pop(key, None))
            await asyncio.shield(task)

    def release(self, model: LoadedModel, keep_alive: float | None = None) -> None:
        """Drop one reference and restart the keep-alive timer (`None`: the default)."""
        keep = self.default_keep_alive if keep_alive is None else keep_alive
        model.refs = max(0, model.refs - 1)
        model.last_used = time.monotonic()
        model.expires_at = math.inf if model.pinned else self._expiry(keep)
        if model.refs == 0 and (model.unload_when_idle or (keep == 0 and not model.pinned)):
            self._unload(model)
        asyncio.get_running_loop().create_task(self._notify_idle())

    def _expiry(self, keep: float) -> float:
        """Unix time a model kept `keep` seconds expires: inf for forever (negative, infinite or
        beyond MAX_KEEP_ALIVE_S), so every expiry is a date /api/ps can print."""
        if math.isnan(keep):
            keep = self.default_keep_alive
        return math.inf if keep < 0 or keep > MAX_KEEP_ALIVE_S else self.clock() + keep

    async def load(self, name: str, keep_alive: float | None = None, pin: bool = False,
                   context_length: int | None = None) -> LoadedModel:
        """Load `name` (if needed, or at `context_length` tokens if given) without using it; its
        keep-alive starts now. `pin` keeps it loaded until an explicit `unload`."""
        model = await self.acquire(name, context_length)
        model.pinned = model.pinned or pin
        self.release(model, keep_alive)
        return model

    def unload(self, name: str) -> bool:
        """Unload `name` now if it is loaded and idle, else mark it to go when idle; False if not loaded."""
        model = self.find_loaded(name)
        if model is None:
            return False
        model.pinned, model.unload_when_idle = False, True
        model.expires_at = self.clock()
        if model.refs == 0:
            self._unload(model)
        return True

    def forget(self, name: str) -> bool:
        """Like `unload`, and new requests for `name` no longer reach this copy (they load the
        store's current files, or fail if there are none): for a name removed or repointed in
        the store. False if not loaded."""
        model = self.find_loaded(name)
        if model is None:
            return False
        self.unload(name)
        self._models.pop(model.resolved.key, None)
        return True

    def reap(self) -> None:
        """Unload every idle model whose keep-alive has run out."""
        now = self.clock()
        for model in list(self._models.values()):
            if model.refs == 0 and model.expires_at <= now:
                self._unload(model)

    async def run_reaper(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.reap()

    def shutdown(self) -> None:
        for model in list(self._models.values()):
            self._unload(model)

    def used_bytes(self) -> int:
        return sum(m.size_bytes for m in self._models.values())

    async def _load(self, resolved: ResolvedModel, load: ModelLoad, pinned: bool = False) -> LoadedModel:
        self._loads[resolved.key] = load
        try:
            await self._make_room(resolved.size_bytes)
            engine = await asyncio.to_thread(self.load_engine, resolved, load)
        finally:
            self._loads.pop(resolved.key, None)
        size = int(getattr(engine, "memory_bytes", 0) or resolved.size_bytes)
        expires = math.inf if pinned else self._expiry(self.default_keep_alive)
        model = self._models[resolved.key] = LoadedModel(resolved, engine, size, expires_at=expires, pinned=pinned)
        return model

    async def _make_room(self, needed: int) -> None:
        if self.memory_budget is None:
            return
        while self._models and self.used_bytes() + needed > self.memory_budget:
            idle = [m for m in self._models.values() if m.refs == 0]
            if idle:
                self._unload(min(idle, key=lambda m: m.last_used))
                continue
            async with self._idle:
                await self._idle.wait()

    async def _notify_idle(self) -> None:
        async with self._idle:
            self._idle.notify_all()

    def _unload(self, model: LoadedModel) -> None:
        if self._models.get(model.resolved.key) is model:
            del self._models[model.resolved.key]
            model.engine.shutdown()
        elif model.unload_when_idle and model.refs == 0:  # forgotten while busy, now idle
            model.unload_when_idle = False
            model.engine.shutdown()
