"""One model load while it runs: what it asks for (the context length) and how far it has come.

The manager makes a ModelLoad per load and hands it to the engine loader, which reports progress
into it from its worker thread (`report`); /app/api/loading shows the ones in flight, so a page
draws a real progress bar instead of a clock. Plain int and str fields: a reader on the event
loop sees each one whole.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class ModelLoad:
    name: str
    context_length: int | None = None  # tokens; None: the server's default for the model
    stage: str = "starting"  # "starting", "weights" (reading them), "cache" (sizing the KV cache)
    done: int = 0  # tensors loaded so far
    total: int = 0  # tensors to load; 0 while unknown
    started_at: float = field(default_factory=time.time)  # unix seconds

    def report(self, done: int, total: int) -> None:
        """Called by the loader (any thread) as weights arrive: `done` of `total` tensors."""
        self.total = max(total, done)
        self.done = done
        self.stage = "weights" if done < total else "cache"  # the last one in: the KV cache is next

    def to_json(self) -> dict:
        return {"name": self.name, "context_length": self.context_length, "stage": self.stage,
                "done": self.done, "total": self.total,
                "fraction": (self.done / self.total) if self.total else None, "started_at": self.started_at}
