"""Streaming engine for servers: requests come and go at any time; one thread steps the model.

The model runs in a dedicated thread so the asyncio event loop serving HTTP never waits on a
forward pass (torch releases the GIL inside its kernels); prompts are tokenized in a worker thread,
and one far too long for the context is refused from a prefix. Commands (add, abort) reach the
thread through a locked list; outputs come back through each request's asyncio.Queue. A request
that makes a step fail ends with that error alone; the others go on.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from corral.core.outputs import RequestOutput
from corral.core.sampling_params import SamplingParams
from corral.engine.engine_args import EngineArgs
from corral.engine.llm_engine import LLMEngine
from corral.engine.prompt_tokens import encode_prompt, too_long

log = logging.getLogger("corral.engine")


@dataclass
class EngineStats:
    num_running: int
    num_waiting: int
    kv_cache_usage: float  # 0..1
    prompt_tokens_total: int
    generation_tokens_total: int
    num_preemptions: int


@dataclass
class _Stream:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue


class AsyncEngine:
    def __init__(self, engine: LLMEngine | Callable[[], LLMEngine], model_name: str | None = None):
        """`engine`, or a function that builds it: then it is built in the engine's own thread (see
        from_model), and its errors are raised here."""
        self._cond = threading.Condition()
        self._commands: list[tuple] = []
        self._streams: dict[str, _Stream] = {}
        self._stopped = False
        self._built = threading.Event()
        self._build_error: BaseException | None = None
        build = engine if callable(engine) and not isinstance(engine, LLMEngine) else None
        if build is None:
            self._adopt(engine, model_name)
        name = model_name or (engine.args.model if build is None else "model")
        self._thread = threading.Thread(target=self._run, args=(build, model_name), name=f"corral-engine-{name}",
                                        daemon=True)
        self._thread.start()
        if build is not None:
            self._built.wait()
            if self._build_error is not None:
                self._thread.join()
                raise self._build_error

    def _adopt(self, engine: LLMEngine, model_name: str | None) -> None:
        self.engine = engine
        self.model_name = model_name or engine.args.model
        self.tokenizer = engine.tokenizer
        self.model_config = engine.model_config
        self.max_model_len = engine.max_model_len
        self.memory_bytes = engine.memory_bytes
        self.load_seconds = engine.loaded.load_seconds
        self.device = engine.device  # read by /api/ps (size_vram)
        self.placement = engine.placement()  # device, dtype, attention backend, KV cache type
        self.placement_info = engine.placement_info()  # the same as a dict, for /api/ps

    @classmethod
    def from_model(cls, model, on_load_progress: Callable[[int, int], None] | None = None,
                   **engine_kwargs) -> "AsyncEngine":
        """Load `model` in the thread that will step it and return once it is loaded (errors are
        raised here). A model stepped by another thread than the one that loaded it decoded 30-50%
        slower while the loading thread lived on (a server's worker threads do): 19 against 13 ms a
        token for SmolLM2-135M on 2 cores, the OpenMP kernels' threads slowed by the loading
        thread's idle team. `on_load_progress(done, total)` is called in that thread."""
        return cls(lambda: LLMEngine(EngineArgs(model=str(model), **engine_kwargs), on_load_progress=on_load_progress),
                   str(model))

    # -- API used by the server (event-loop side) -------------------------------------------

    async def generate(
        self, prompt: str | list[int], params: SamplingParams, request_id: str | None = None
    ) -> AsyncIterator[RequestOutput]:
        """Stream RequestOutput deltas; stopping the iteration early aborts the request."""
        request_id = request_id or uuid.uuid4().hex
        if isinstance(prompt, str):
            ids = await asyncio.to_thread(encode_prompt, self.tokenizer, prompt, self.max_model_len - 1)
        else:
            ids = list(prompt)
        self._check_fits(ids, params)
        if params.structured_outputs is not None:  # the first one builds the grammar vocabulary here
            await asyncio.to_thread(self.engine.structured.vocabulary)
        stream = _Stream(asyncio.get_running_loop(), asyncio.Queue())
        with self._cond:
            self._streams[request_id] = stream
            self._commands.append(("add", request_id, ids, params, prompt if isinstance(prompt, str) else None))
            self._cond.notify()
        finished = False
        try:
            while True:
                item = await stream.queue.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                finished = item.finished
                yield item
                if finished:
                    return
        finally:
            if not finished:
                self._command(("abort", request_id))
            with self._cond:
                self._streams.pop(request_id, None)

    async def abort(self, request_id: str) -> None:
        self._command(("abort", request_id))

    def stats(self) -> EngineStats:
        sched = self.engine.scheduler
        return EngineStats(
            num_running=sched.num_running,
            num_waiting=sched.num_waiting,
            kv_cache_usage=sched.kv_usage,
            prompt_tokens_total=self.engine.prompt_tokens_total,
            generation_tokens_total=self.engine.generation_tokens_total,
            num_preemptions=sched.num_preemptions,
        )

    def shutdown(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=30)

    # -- engine thread ------------------------------------------------------------------------

    def _check_fits(self, ids: list[int], params: SamplingParams) -> None:
        if len(ids) + 1 > self.max_model_len:
            raise too_long(len(ids), self.max_model_len - 1)

    def _command(self, cmd: tuple) -> None:
        with self._cond:
            self._commands.append(cmd)
            self._cond.notify()

    def _run(self, build: Callable[[], LLMEngine] | None = None, model_name: str | None = None) -> None:
        if build is not None:
            try:
                self._adopt(build(), model_name)
            except BaseException as e:  # raised to the constructor's caller
                self._build_error = e
                return
            finally:
                self._built.set()
        engine = self.engine
        while True:
            with self._cond:
                while not self._commands and not engine.has_unfinished() and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    break
                commands, self._commands = self._commands, []
            for cmd in commands:
                self._apply(cmd)
            if not engine.has_unfinished():
                continue
            try:
                touched = engine.step()
            except Exception as e:  # no single request to blame: fail them all rather than hang them
                rids = engine.unfinished_request_ids()
                log.error("engine step failed on %s with %d requests in flight (%s); failing them all",
                          self.model_name, len(rids), ", ".join(rids[:16]), exc_info=e)
                for rid in rids:
                    self._push(rid, e)
                    engine.abort(rid)
                continue
            for rid, error in engine.pop_failures().items():
                self._push(rid, error)
            for rid in touched:
                delta = engine.pop_delta(rid)
                if delta is not None:
                    self._push(rid, delta)
        for rid in engine.unfinished_request_ids():
            engine.abort(rid)

    def _apply(self, cmd: tuple) -> None:
        if cmd[0] == "add":
            _, rid, ids, params, text = cmd
            try:
                self.engine.add_request(ids, params, request_id=rid, prompt_text=text)
            except Exception as e:
                self._push(rid, e)
        elif cmd[0] == "abort":
            self.engine.abort(cmd[1])

    def _push(self, request_id: str, item) -> None:
        with self._cond:
            stream = self._streams.get(request_id)
        if stream is not None:
            stream.loop.call_soon_threadsafe(stream.queue.put_nowait, item)
