"""Tokens per second over the last minutes, from the engines' own counters, kept by the server.

A task started with the app (`run`) samples every loaded engine's generated-token total each
`interval_s` and keeps the rate of each interval in a ring buffer covering `window_s`: a page
opened now sees the minutes before it. Engines are told apart by identity, so a model loaded or
unloaded between two samples neither counts its whole total again nor makes the rate negative.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Callable, Iterable

log = logging.getLogger("corral.server")
WINDOW_S = 300.0
INTERVAL_S = 2.0


class TokenHistory:
    def __init__(self, window_s: float = WINDOW_S, interval_s: float = INTERVAL_S,
                 clock: Callable[[], float] = time.time):
        self.window_s, self.interval_s, self.clock = window_s, interval_s, clock
        self.samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=int(window_s / interval_s) + 2)
        self._last_totals: dict[int, int] = {}
        self._last_t: float | None = None

    def sample(self, engine_totals: Iterable[tuple[object, int]]) -> None:
        """Note each loaded engine's generated-token total now; the first call only sets the baseline."""
        now = self.clock()
        totals = {id(engine): int(total) for engine, total in engine_totals}
        if self._last_t is not None and now > self._last_t:
            # an engine new since the last sample counts from 0: it loaded within this interval
            tokens = sum(max(0, n - self._last_totals.get(key, 0)) for key, n in totals.items())
            self.samples.append((now, tokens / (now - self._last_t)))
        self._last_totals, self._last_t = totals, now

    def rates(self) -> list[dict]:
        """[{t: unix seconds, tps}] over the last window, oldest first."""
        since = self.clock() - self.window_s
        return [{"t": t, "tps": tps} for t, tps in self.samples if t >= since]

    async def run(self, engine_totals: Callable[[], Iterable[tuple[object, int]]]) -> None:
        """Sample `engine_totals()` every interval until cancelled."""
        while True:
            try:
                self.sample(engine_totals())
            except Exception:  # an engine mid-unload: this sample only is lost
                log.exception("token rate sample failed")
            await asyncio.sleep(self.interval_s)
