"""Keeping freed buffers in the process instead of handing them back to the OS.

A prefill step of 1024 tokens allocates and frees tens of megabytes per layer (a 1024 x 4864
float32 activation is 20 MB). glibc serves such sizes with fresh mmap()s or trims them off the
heap when freed, so every step faults the same memory in again, zeroed page by page by the
kernel: 200-400 thousand faults and a quarter of the step's time on Qwen2.5-0.5B
(docs/benchmarks.md). Raising glibc's mmap and trim thresholds keeps that memory in the heap
for the next step. Other C libraries are left as they are.
"""
from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts on 64-bit systems
TRIM_THRESHOLD = 256 << 20  # freed memory kept at the top of the heap, at most

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Tell glibc to serve blocks up to 32 MiB from the heap and to keep up to 256 MiB of freed
    heap memory. Once per process; True when it took effect (Linux with glibc)."""
    global _done
    if _done is None:
        _done = False
        if sys.platform.startswith("linux"):
            try:
                mallopt = ctypes.CDLL(None).mallopt
            except (AttributeError, OSError):  # not glibc
                return False
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            mallopt.restype = ctypes.c_int
            _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
