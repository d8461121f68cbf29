"""glibc's heap: what it keeps and what it hands back to the operating system.

- After loading: a model load builds large short-lived objects (the vocabulary as Python strings,
  the tokenizer's build tables). glibc keeps what they freed in its heap, where it still counts as
  resident memory (16 MiB for a 150k-token vocabulary) until something reuses it.
  `release_free_memory` returns the free pages (`malloc_trim(0)`).
- While serving: a prefill step of 1024 tokens allocates and frees tens of megabytes per layer (a
  1024 x 4864 float32 activation is 20 MB). glibc serves such sizes with fresh mmap()s or trims
  them off the heap when freed, so every step faults the same memory in again, zeroed page by page
  by the kernel: 200-400 thousand faults and a quarter of the step's time on Qwen2.5-0.5B
  (docs/benchmarks.md). `keep_freed_memory` raises glibc's mmap and trim thresholds so that memory
  stays in the heap for the next step.

Where the C library has no such calls (macOS, musl, Windows) both do nothing.
"""
from __future__ import annotations

import ctypes
import gc
import sys
from functools import lru_cache

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts on 64-bit systems
TRIM_THRESHOLD = 256 << 20  # freed memory kept at the top of the heap, at most

_kept: bool | None = None


def release_free_memory() -> None:
    """Collect garbage, then return free heap pages to the OS (milliseconds; call after loading)."""
    gc.collect()
    trim = _libc("malloc_trim")
    if trim is not None:
        trim(0)


def keep_freed_memory() -> bool:
    """Tell glibc to serve blocks up to 32 MiB from the heap and to keep up to 256 MiB of freed
    heap memory. Once per process; True when it took effect (Linux with glibc)."""
    global _kept
    if _kept is None:
        _kept = False
        mallopt = _libc("mallopt") if sys.platform.startswith("linux") else None
        if mallopt is None:  # not glibc
            return False
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        _kept = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _kept


@lru_cache(maxsize=None)
def _libc(name: str):
    """A function of the C library, or None where it has none by that name."""
    try:
        return getattr(ctypes.CDLL(None), name)  # the process's own symbols, the C library's among them
    except (OSError, AttributeError, TypeError):
        return None
