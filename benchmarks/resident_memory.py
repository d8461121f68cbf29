"""Resident memory of a loaded model against its file size plus its KV cache.

In this (fresh) process: read VmRSS, load the model with `LLM(path, kv_cache_memory=...)`, generate
a few tokens, read VmRSS again. The target is growth <= 1.15 x (file size + KV cache bytes). Pages
of the memory-mapped file that the model touches count in RSS (RssFile); the file-size term covers
them. The breakdown reads VmRSS as each loading stage returns (GGUF file parsed, tokenizer built,
weights loaded, KV cache allocated), by wrapping those functions; VmHWM is the peak.

    python benchmarks/resident_memory.py /tmp/corral-bench/qwen2.5-0.5b-q4_0.gguf --kv-mib 64

Run it once per model file: memory freed by one load stays in the allocator of this process.
"""
from __future__ import annotations

import argparse
import functools
import gc
import os
import sys
from pathlib import Path

MiB = 1 << 20


def status_kib() -> dict[str, int]:
    """The kB fields of /proc/self/status (VmRSS, VmHWM, RssAnon, RssFile, ...)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                out[key] = int(parts[0])
    return out


class Stages:
    """Records (stage, VmRSS, RssAnon, RssFile) in bytes, relative to the first reading."""

    def __init__(self):
        self.base = status_kib()
        self.rows: list[tuple[str, dict[str, int]]] = []

    def mark(self, stage: str) -> None:
        self.rows.append((stage, status_kib()))

    def growth(self, key: str = "VmRSS", row: int = -1) -> int:
        return (self.rows[row][1][key] - self.base[key]) * 1024


def wrap(owner, attr: str, stage: str, stages: Stages) -> None:
    """Replace owner.attr by a function that marks `stage` each time it returns."""
    original = getattr(owner, attr)

    @functools.wraps(original)
    def marked(*args, **kwargs):
        result = original(*args, **kwargs)
        stages.mark(stage)
        return result

    setattr(owner, attr, marked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .gguf file")
    parser.add_argument("--kv-mib", type=int, default=64, help="KV cache budget (kv_cache_memory) in MiB")
    parser.add_argument("--max-model-len", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=8, help="tokens to generate")
    args = parser.parse_args()
    path = Path(args.model)

    from corral import LLM, SamplingParams
    from corral.engine import llm_engine
    from corral.loader import gguf_file
    from corral.tokenizer import Tokenizer

    gc.collect()
    stages = Stages()
    # Loading order in corral.engine.loading.load_model: file, tokenizer, weights; then the engine
    # allocates the KV cache.
    original_init = gguf_file.GGUFFile.__init__
    wrap(gguf_file.GGUFFile, "__init__", "GGUF file parsed", stages)
    from_gguf = Tokenizer.from_gguf.__func__
    setattr(Tokenizer, "from_gguf", classmethod(_marking(from_gguf, "tokenizer built", stages)))
    wrap(llm_engine, "load_model", "weights loaded", stages)

    llm = LLM(str(path), kv_cache_memory=args.kv_mib * MiB, max_model_len=args.max_model_len)
    gc.collect()
    stages.mark("engine ready (KV allocated)")
    llm.generate("The capital of France is", SamplingParams(max_tokens=args.tokens, temperature=0))
    gc.collect()
    stages.mark(f"after generating {args.tokens} tokens")
    gguf_file.GGUFFile.__init__ = original_init

    kv_bytes = sum(t.numel() * t.element_size() for t in llm.engine.runner.kv_caches)
    file_bytes = path.stat().st_size
    growth = stages.growth()
    print(f"model      {path}")
    print(f"file       {file_bytes / MiB:8.1f} MiB")
    print(f"KV cache   {kv_bytes / MiB:8.1f} MiB (tensors held by the model runner)")
    print(f"RSS growth {growth / MiB:8.1f} MiB = {growth / (file_bytes + kv_bytes):.2f} x (file + KV)")
    print(f"peak       {(stages.rows[-1][1]['VmHWM'] - stages.base['VmRSS']) * 1024 / MiB:8.1f} MiB over the start (VmHWM)")
    print(f"load time  {llm.engine.loaded.load_seconds:8.1f} s")
    print()
    print(f"{'stage':34s} {'RSS':>9s} {'anon':>9s} {'file':>9s}   (growth since start, MiB)")
    for i, (stage, _) in enumerate(stages.rows):
        cols = [stages.growth(k, i) / MiB for k in ("VmRSS", "RssAnon", "RssFile")]
        print(f"{stage:34s} " + " ".join(f"{c:9.1f}" for c in cols))


def _marking(fn, stage: str, stages: Stages):
    @functools.wraps(fn)
    def marked(cls, *args, **kwargs):
        result = fn(cls, *args, **kwargs)
        stages.mark(stage)
        return result

    return marked


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
