"""Progress reports of store operations, shaped like the lines Ollama's `/api/pull` streams.

`status` is a phrase ("pulling manifest", "pulling 6a0746a1ec1a", "verifying sha256 digest",
"writing manifest", "success"); while a file downloads, `digest`, `total` and `completed` (bytes)
are set. `filename` names the file being fetched, for progress bars.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class ProgressEvent:
    status: str
    digest: str | None = None
    total: int | None = None  # bytes
    completed: int | None = None  # bytes
    filename: str | None = None


ProgressCallback = Callable[[ProgressEvent], None]


def ignore_progress(event: ProgressEvent) -> None:
    """The default callback: drop the event."""
