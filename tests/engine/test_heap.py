"""glibc's heap: released after loading (a no-op where the C library cannot, and never fails), and
freed activation-sized buffers kept so the next step reuses them without faults."""
from __future__ import annotations

import platform
import resource
import sys

import pytest
import torch

from corral.engine import heap
from corral.engine.heap import _libc, keep_freed_memory, release_free_memory

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only"
)


def test_release_free_memory():
    release_free_memory()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert _libc("malloc_trim") is not None


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@glibc
def test_a_freed_20_mb_buffer_is_reused_without_page_faults() -> None:
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # once per process, then the same answer
    size = 1024 * 4864  # a 1024-token, 4864-wide float32 activation: 20 MB, 4864 pages
    for _ in range(4):  # steps: allocated, touched, freed (the heap settles after a few)
        torch.empty(size).fill_(1.0)
    before = _faults()
    for _ in range(4):
        torch.empty(size).fill_(2.0)
    # served from the kept heap; glibc's defaults fault all 4864 pages in again each time
    assert _faults() - before < 500


def test_elsewhere_it_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_kept", None)
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    assert heap.keep_freed_memory() is False
