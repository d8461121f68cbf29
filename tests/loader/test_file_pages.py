"""Pages of memory-mapped views: dropped once a copy of a view is in use, faulted in at load for
the views the kernels read."""
from __future__ import annotations

import mmap
import os
import resource
import sys

import numpy as np
import pytest

from corral.loader.gguf_file import populate_pages, release_pages

linux = pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_DONTNEED"),
                           reason="/proc and madvise(MADV_DONTNEED)")


def _kernel_populates() -> bool:  # MADV_POPULATE_READ: Linux 5.14
    try:
        major, minor = (int(p) for p in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return sys.platform.startswith("linux") and (major, minor) >= (5, 14)


populating = pytest.mark.skipif(not _kernel_populates(), reason="madvise(MADV_POPULATE_READ): Linux 5.14")


def _rss_file_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


@linux
def test_the_views_pages_leave_rss_and_the_data_stays(tmp_path):
    path = tmp_path / "weights.bin"
    payload = np.random.default_rng(0).integers(0, 256, 32 << 20, dtype=np.uint8)
    payload.tofile(path)
    mapped = np.memmap(path, dtype=np.uint8, mode="c")  # as GGUFFile maps a model
    page = mmap.PAGESIZE
    view = mapped[3 * page + 100 : (30 << 20) + 50]  # starts and ends inside pages
    total = int(view.sum(dtype=np.int64))  # every page of the view resident
    before = _rss_file_kib()
    released = release_pages(view)
    assert released == (30 << 20) - 4 * page  # whole pages inside the view only
    assert before - _rss_file_kib() >= 0.9 * released / 1024
    assert int(view.sum(dtype=np.int64)) == total  # read back from the file
    np.testing.assert_array_equal(view[:64], payload[3 * page + 100 : 3 * page + 164])


def test_arrays_that_are_not_file_views_are_left_alone():
    assert release_pages(np.zeros(1 << 20, dtype=np.uint8)) == 0


@populating
def test_a_populated_view_is_resident_before_it_is_read(tmp_path):
    path = tmp_path / "weights.bin"
    payload = np.random.default_rng(1).integers(0, 256, 32 << 20, dtype=np.uint8)
    payload.tofile(path)
    mapped = np.memmap(path, dtype=np.uint8, mode="c")
    view = mapped[mmap.PAGESIZE + 100 : (24 << 20) + 50]
    before = _rss_file_kib()
    assert populate_pages(view) >= view.nbytes
    assert _rss_file_kib() - before >= 0.9 * view.nbytes / 1024
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    total = int(view.sum(dtype=np.int64))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults < 64  # 6144 pages read, no faults
    assert total == int(payload[mmap.PAGESIZE + 100 : (24 << 20) + 50].sum(dtype=np.int64))


def test_populating_leaves_arrays_that_are_not_file_views_alone():
    assert populate_pages(np.zeros(1 << 20, dtype=np.uint8)) == 0


@linux
def test_a_refused_advice_is_only_a_missed_head_start(tmp_path, monkeypatch):
    from corral.loader import gguf_file

    path = tmp_path / "weights.bin"
    np.zeros(1 << 20, dtype=np.uint8).tofile(path)
    view = np.memmap(path, dtype=np.uint8, mode="c")[100:]
    monkeypatch.setattr(gguf_file, "MADV_POPULATE_READ", 0x7FFF)  # as a kernel before 5.14: EINVAL
    assert populate_pages(view) == view.nbytes + 100  # read ahead instead (MADV_WILLNEED)
    monkeypatch.setattr(mmap, "MADV_WILLNEED", 0x7FFE)  # and that refused too: no error, nothing done
    assert populate_pages(view) == 0
    assert int(view.sum()) == 0
