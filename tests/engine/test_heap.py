"""Releasing the heap after loading is a no-op where the C library cannot, and never fails."""
import platform
import sys

from corral.engine.heap import _malloc_trim, release_free_memory


def test_release_free_memory():
    release_free_memory()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert _malloc_trim() is not None
