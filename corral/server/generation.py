"""Run a GenerateRequest on a loaded model: the only place the server talks to the engine.

`start_generation` takes a model reference, builds the prompt (in a worker thread) and pulls the engine's first delta,
so an invalid request fails (ValidationError, ContextLengthError, ...) before any response byte
is sent. The returned Generation must be consumed with `deltas()` or `collect()`, or closed; each
of those releases the model reference exactly once and aborts the request if it had not finished.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import AsyncIterator

import anyio

from corral.core.outputs import RequestOutput
from corral.server.accumulate import Accumulated
from corral.server.chat_reply import ReplyPlan
from corral.server.chat_setup import constrain_after_thinking, prepare_chat, with_prompt
from corral.server.generate_request import GenerateRequest
from corral.server.metrics import ServerMetrics
from corral.server.model_manager import LoadedModel, ModelManager
from corral.server.prompt_builder import build_prompt


@dataclass
class Timing:
    """time.monotonic() marks of one request; durations in seconds."""

    received: float
    load_s: float = 0.0
    submitted: float = 0.0
    first_token: float | None = None
    finished: float | None = None

    @property
    def prompt_eval_s(self) -> float:
        return (self.first_token or self.submitted) - self.submitted

    @property
    def eval_s(self) -> float:
        return (self.finished or time.monotonic()) - (self.first_token or self.submitted)

    @property
    def total_s(self) -> float:
        return (self.finished or time.monotonic()) - self.received


class Generation:
    def __init__(self, manager: ModelManager, model: LoadedModel, req: GenerateRequest, request_id: str,
                 timing: Timing, metrics: ServerMetrics | None):
        self.manager, self.model, self.req = manager, model, req
        self.request_id = request_id
        self.timing = timing
        self.metrics = metrics
        self.prompt_token_ids: list[int] = []
        self.num_generated = 0
        self.output_token_ids: dict[int, list[int]] = {}  # completion index -> ids generated so far
        self.finished = False
        self._iter = None
        self._first: RequestOutput | None = None
        self._closed = False
        self.reply = ReplyPlan()  # how to read thinking and tool calls out of the reply

    async def _start(self, prompt: str | list[int]) -> None:
        self.timing.submitted = time.monotonic()
        self._iter = self.model.engine.generate(prompt, self.req.params, request_id=self.request_id).__aiter__()
        try:
            self._first = await self._iter.__anext__()
        except StopAsyncIteration:
            self.finished = True
            return
        self.prompt_token_ids = list(self._first.prompt_token_ids)

    def _observe(self, delta: RequestOutput) -> None:
        now = time.monotonic()
        for out in delta.outputs:
            self.num_generated += len(out.token_ids)
            self.output_token_ids.setdefault(out.index, []).extend(out.token_ids)
        if self.timing.first_token is None and self.num_generated:
            self.timing.first_token = now
            if self.metrics:
                self.metrics.observe_first_token(self.model.name, now - self.timing.received)
        if delta.finished:
            self.finished = True
            self.timing.finished = now
            if self.metrics:
                decode = now - (self.timing.first_token or now)
                self.metrics.observe_finished(self.model.name, len(self.prompt_token_ids), self.num_generated, decode)

    async def deltas(self) -> AsyncIterator[RequestOutput]:
        """The engine's deltas, the first one included; closes the generation when done or abandoned."""
        try:
            if self._first is not None:
                first, self._first = self._first, None
                self._observe(first)
                yield first
            while not self.finished and self._iter is not None:
                try:
                    delta = await self._iter.__anext__()
                except StopAsyncIteration:
                    break
                self._observe(delta)
                yield delta
        finally:
            await self.close()

    async def collect(self) -> Accumulated:
        acc = Accumulated(prompt_token_ids=list(self.prompt_token_ids))
        async for delta in self.deltas():
            acc.add(delta)
        return acc

    async def close(self) -> None:
        """Abort the request if unfinished and release the model; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            try:
                if not self.finished and self._iter is not None:
                    aclose = getattr(self._iter, "aclose", None)
                    if aclose is not None:
                        await aclose()
                    await self.model.engine.abort(self.request_id)
            finally:
                self.manager.release(self.model, self.req.keep_alive)


async def start_generation(manager: ModelManager, req: GenerateRequest, metrics: ServerMetrics | None = None,
                           request_id: str | None = None) -> Generation:
    """Load (if needed) and start `req`; raises the engine's or the template's user errors."""
    timing = Timing(received=time.monotonic())
    model = await manager.acquire(req.model, req.num_ctx)
    timing.load_s = time.monotonic() - timing.received
    gen = Generation(manager, model, req, request_id or uuid.uuid4().hex, timing, metrics)
    try:
        engine = model.engine
        if hasattr(engine, "check_can_generate"):  # an embedding model: a 400 naming its kind
            engine.check_can_generate()
        tokenizer = engine.tokenizer
        plan = prepare_chat(req, tokenizer)
        # Template rendering and tokenizing run in a worker thread: the event loop stays free.
        prompt = await asyncio.to_thread(build_prompt, req, tokenizer, engine.max_model_len - 1)
        gen.reply = with_prompt(plan, prompt, tokenizer)
        constrain_after_thinking(req, gen.reply)
        await gen._start(prompt)
    except BaseException:
        await gen.close()
        raise
    return gen
