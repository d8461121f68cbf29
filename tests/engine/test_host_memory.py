"""Freed activation-sized buffers stay in the process: the next step reuses them without faults."""
from __future__ import annotations

import platform
import resource
import sys

import pytest
import torch

from corral.engine.host_memory import keep_freed_memory

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only"
)


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
    import corral.engine.host_memory as hm

    monkeypatch.setattr(hm, "_done", None)
    monkeypatch.setattr(hm.sys, "platform", "darwin")
    assert hm.keep_freed_memory() is False
