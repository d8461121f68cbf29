"""Run a blocking store operation (pull, create) in a worker thread and relay its progress.

The event loop never blocks: progress events cross from the worker thread through an asyncio
queue. `cancel()` makes the operation's next progress report raise `StoreJobCancelled`, so a
pull whose client went away stops at its next report and rolls back (the store's own rule: a
failed pull or create leaves the store's models as they were). An operation that reports
nothing more before finishing completes; the store then holds the whole model, never half.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Callable

from corral.store.progress import ProgressCallback, ProgressEvent

Work = Callable[[ProgressCallback], Any]


class StoreJobCancelled(Exception):
    """Raised inside the worker thread by the progress callback once the job is cancelled."""


class StoreJob:
    def __init__(self, work: Work):
        self._work = work
        self._cancelled = threading.Event()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._future = self._loop.run_in_executor(None, self._run)
        self.finished = False

    def _report(self, event: ProgressEvent) -> None:
        if self._cancelled.is_set():
            raise StoreJobCancelled("the client went away")
        self._loop.call_soon_threadsafe(self._queue.put_nowait, ("event", event))

    def _run(self) -> None:
        try:
            result = self._work(self._report)
        except BaseException as e:  # handed to the event loop, re-raised there
            self._loop.call_soon_threadsafe(self._queue.put_nowait, ("error", e))
        else:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, ("done", result))

    async def head(self, preamble: frozenset[str]) -> list[ProgressEvent]:
        """Events up to and including the first whose status is not in `preamble` (or all of
        them if the job ends first). Raises the job's error if it fails before then, so a
        response can still carry the right HTTP status."""
        events: list[ProgressEvent] = []
        while True:
            kind, value = await self._queue.get()
            if kind == "error":
                self.finished = True
                raise value
            if kind == "done":
                self.finished = True
                self._queue.put_nowait((kind, value))
                return events
            events.append(value)
            if value.status not in preamble:
                return events

    async def events(self) -> AsyncIterator[ProgressEvent]:
        """The remaining events; raises the job's error at the end if it failed."""
        while True:
            kind, value = await self._queue.get()
            if kind == "event":
                yield value
                continue
            self.finished = True
            if kind == "error":
                raise value
            return

    async def result(self) -> Any:
        """Wait for the job; its return value, or its error raised."""
        while True:
            kind, value = await self._queue.get()
            if kind == "event":
                continue
            self.finished = True
            if kind == "error":
                raise value
            return value

    def cancel(self) -> None:
        self._cancelled.set()

    async def close(self) -> None:
        """Cancel the job if it is still running and wait for the worker thread to stop."""
        if not self.finished:
            self.cancel()
        await asyncio.gather(asyncio.shield(self._future), return_exceptions=True)
