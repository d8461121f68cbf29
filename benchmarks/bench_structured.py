"""Decode speed with and without a JSON schema, at batch 1 and 16, and the schema's compile time.

    python benchmarks/bench_structured.py /tmp/corral-bench/qwen2.5-0.5b-q4_0.gguf --threads 2 --repeats 3

Each run sends `batch` short prompts for `--tokens` greedy tokens. Free requests ignore EOS; the
constrained ones follow a schema that cannot be finished within that many tokens (an array of at
least 1000 short strings), so both sides generate exactly the same number of tokens. Runs of the
two kinds alternate, and the median of the repeats is reported (the machine may be shared).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corral import LLM, SamplingParams, StructuredOutputsParams  # noqa: E402

SCHEMA = {"type": "object", "properties": {"items": {"type": "array", "minItems": 1000, "items": {
    "type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                     "size": {"type": "integer", "minimum": 0, "maximum": 9999}},
    "required": ["name", "size"]}}}, "required": ["items"]}


def run(llm: LLM, batch: int, tokens: int, constrained: bool) -> float:
    spec = StructuredOutputsParams(json=SCHEMA) if constrained else None
    params = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=not constrained, structured_outputs=spec)
    prompts = [f"Item list number {i}:" for i in range(batch)]
    start = time.perf_counter()
    outs = llm.generate(prompts, params)
    elapsed = time.perf_counter() - start
    generated = sum(len(o.outputs[0].token_ids) for o in outs)
    if generated != batch * tokens:
        raise RuntimeError(f"expected {batch * tokens} tokens, got {generated}")
    return generated / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    llm = LLM(args.model, num_threads=args.threads, max_model_len=512, max_num_seqs=16)
    manager = llm.engine.structured
    start = time.perf_counter()
    manager.vocabulary()
    print(f"vocabulary for the grammar library: {time.perf_counter() - start:.2f} s (once per model)")
    start = time.perf_counter()
    manager.compile(StructuredOutputsParams(json=SCHEMA))
    print(f"schema compile: {(time.perf_counter() - start) * 1e3:.1f} ms (first time); ", end="")
    start = time.perf_counter()
    manager.compile(StructuredOutputsParams(json=SCHEMA))
    print(f"{(time.perf_counter() - start) * 1e3:.2f} ms (cached)")
    run(llm, 1, 4, False)  # warm-up
    for batch in args.batches:
        free, constrained = [], []
        for _ in range(args.repeats):
            free.append(run(llm, batch, args.tokens, False))
            constrained.append(run(llm, batch, args.tokens, True))
        f, c = statistics.median(free), statistics.median(constrained)
        print(f"batch {batch:2d}: free {f:6.1f} tok/s, JSON schema {c:6.1f} tok/s, ratio {c / f:.3f} "
              f"(runs: free {', '.join(f'{x:.1f}' for x in free)}; schema {', '.join(f'{x:.1f}' for x in constrained)})")


if __name__ == "__main__":
    main()
