"""All-or-nothing file writes: write a temporary file beside the target, fsync, rename.

A reader sees either the old file or the complete new one, never a half-written one, and a
crash leaves at worst a stray file in the temporary folder.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_bytes_atomic(path: Path, data: bytes, tmp_dir: Path) -> None:
    """Replace `path` with `data` atomically. `tmp_dir` must be on the same filesystem."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix=".write-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        _unlink_quietly(Path(tmp_name))
        raise


def remove_empty_parents(path: Path, stop: Path) -> None:
    """Remove `path`'s now-empty parent folders up to, not including, `stop`."""
    parent = path.parent
    while parent != stop and stop in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
