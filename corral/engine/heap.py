"""Hand memory that loading freed back to the operating system.

Loading a model builds large short-lived objects (the vocabulary as Python strings, the tokenizer's
build tables). glibc keeps what they freed in its heap, where it still counts as resident memory
(16 MiB for a 150k-token vocabulary) until something reuses it. `malloc_trim(0)` returns the free
pages; where the C library has no such call (macOS, musl, Windows) this does nothing.
"""
from __future__ import annotations

import ctypes
import gc
from functools import lru_cache


def release_free_memory() -> None:
    """Collect garbage, then return free heap pages to the OS (milliseconds; call after loading)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # the process's own symbols, the C library's among them
    except (OSError, AttributeError, TypeError):
        return None
