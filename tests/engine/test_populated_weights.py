"""A GGUF model's quantized weights that the kernels read from the file mapping are faulted in at
load, so that decode steps (a mixture's experts first chosen tokens into a generation) take none."""
from __future__ import annotations

import sys

import pytest

from corral.engine import loading

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps")


def _resident_kib(addr: int) -> int:
    """Rss of the mapping holding address `addr`."""
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(a, 16) for a in head.split("-"))
                inside = lo <= addr < hi
            elif inside and head == "Rss:":
                return int(line.split()[1])
    raise AssertionError(f"no mapping holds {addr:#x}")


@pytest.mark.parametrize("populate", [True, False])
def test_the_kernels_file_pages_are_resident_after_load(make_llm, monkeypatch, populate):
    if not populate:  # the control: without it the mapping holds little until decode steps read it
        monkeypatch.setattr(loading, "populate_file_weights", lambda model: 0)
    llm = make_llm("qwen3_moe", "Q8_0", keep_quantized=True)
    experts = llm.engine.runner.model.model.layers[0].mlp.experts
    views = [e.down_proj.packed.data for e in experts]
    needed_kib = sum(v.nbytes for v in views) // 1024
    resident = _resident_kib(views[0].ctypes.data)
    if populate:
        assert resident >= needed_kib
    else:
        assert resident < needed_kib


def test_weights_larger_than_half_the_free_memory_are_left_to_their_first_read(make_llm, monkeypatch):
    from corral.engine import kv_cache

    monkeypatch.setattr(kv_cache, "available_memory_bytes", lambda: 1 << 16)
    llm = make_llm("qwen3_moe", "Q8_0", keep_quantized=True)
    assert loading.populate_file_weights(llm.engine.runner.model) == 0
    monkeypatch.undo()
    assert loading.populate_file_weights(llm.engine.runner.model) > 0
