"""How many threads a decode step's kernels use when another process may be busy on a core.

A parallel region waits at its end for every thread of its team. When another process keeps one
of the cores busy, the thread the OS put behind it makes each call wait for a scheduler timeslice:
SmolLM2's decode step went from 8 ms to a median of 16 and a mean of 25-33 ms with two threads
beside a busy loop on a 2-core machine, where one thread took a steady 14 ms. `ThreadChoice`
notices the slowdown from the steps' own times and tries one thread fewer; it costs nothing while
steps run at their usual speed.

Policy, per batch size T (a step's time depends on it):
- Steps run with `max` threads (torch's count) while their recent median stays within SLOWDOWN of
  the fastest of the last HISTORY such steps (not of all time: steps slow down as sequences grow).
- When it does not, the next PROBE steps run with max - 1 threads; if their median beats the
  recent median of max-thread steps by MARGIN, max - 1 becomes the choice.
- While on max - 1, every RECHECK steps PROBE steps go back to max, which is chosen again when it
  is at least as fast (the other process has stopped). Such a probe can be costly while the other
  process runs (a two-thread step beside a busy loop took 0.4-1.2 s), so it stops at its first step
  slower than ABORT times the current choice, and rechecks are rare.
"""
from __future__ import annotations

import statistics
from collections import deque

SLOWDOWN = 1.3  # recent median over the fastest step seen: beyond this, try fewer threads
MARGIN = 0.9  # a probe must take at most this share of the current choice's time to win
PROBE = 3  # steps per probe
RECENT = 3  # steps whose median stands for the current choice
HISTORY = 64  # steps whose fastest is the usual speed
RECHECK = 256  # steps between probes of max threads while running with fewer
COOLDOWN = 32  # steps after a probe before the next slowdown probe
ABORT = 2.0  # a probe step this many times slower than the current choice ends the probe


class ThreadChoice:
    def __init__(self) -> None:
        self._times: dict[tuple[int, int], deque[float]] = {}  # the last HISTORY step times
        self._fewer = False  # running with max - 1 threads
        self._probe_left = 0
        self._probe_times: list[float] = []
        self._probe_t = 0
        self._since_probe = COOLDOWN

    def pick(self, t: int, max_threads: int) -> int:
        """Threads for the next step of t tokens, given torch's thread count."""
        if max_threads <= 1:
            return max(max_threads, 1)
        fewer = self._fewer != (self._probe_left > 0)  # a probe runs the other choice
        return max_threads - int(fewer)

    def record(self, t: int, threads: int, max_threads: int, seconds: float) -> None:
        """The time of a step of t tokens run with `threads` (as pick gave it)."""
        if max_threads <= 1:
            return
        key = (t, threads)
        self._times.setdefault(key, deque(maxlen=HISTORY)).append(seconds)
        self._since_probe += 1
        if self._probe_left > 0:
            self._probe_left -= 1
            if t == self._probe_t:
                self._probe_times.append(seconds)
                current = self._recent(t, max_threads - int(self._fewer))
                if current and seconds > ABORT * statistics.median(current):
                    self._probe_left = 0  # clearly worse: no more steps of it
                    return
            if self._probe_left == 0:
                self._decide(t, max_threads)
            return
        current = self._recent(t, threads)
        if not self._fewer:
            if (len(current) == RECENT and self._since_probe >= COOLDOWN
                    and statistics.median(current) > SLOWDOWN * min(self._times[key])):
                self._start_probe(t)
        elif self._since_probe >= RECHECK:
            self._start_probe(t)

    def _recent(self, t: int, threads: int) -> list[float]:
        times = self._times.get((t, threads))
        return list(times)[-RECENT:] if times else []

    def _start_probe(self, t: int) -> None:
        self._probe_left, self._probe_t, self._probe_times, self._since_probe = PROBE, t, [], 0

    def _decide(self, t: int, max_threads: int) -> None:
        current = self._recent(t, max_threads - int(self._fewer))
        if len(self._probe_times) < PROBE or not current:
            return
        probe, now = statistics.median(self._probe_times), statistics.median(current)
        if self._fewer:
            self._fewer = not probe <= now  # max threads again once they are no slower
        else:
            self._fewer = probe <= MARGIN * now
