"""`corral bench MODEL`: offline throughput and latency on random prompts."""
from __future__ import annotations

from corral.cli.serve import add_device_arguments, add_kv_cache_dtype_argument, device_kwargs


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure throughput and latency of a model on random prompts "
                                     "(`corral bench serve --base-url URL`: of a running server)")
    p.add_argument("model", nargs="?", default=None, help="model to measure (default: the bundled model)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1], help="requests in flight (one or more values)")
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--num-requests", type=int, default=None, help="requests per run (default: the concurrency)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--max-num-batched-tokens", type=int, default=1024)
    add_kv_cache_dtype_argument(p)
    add_device_arguments(p)
    p.add_argument("--repeats", type=int, default=1,
                   help="run the concurrency list this many times in turn, then print each value's median "
                        "output tok/s and its ratio to the first value's (steadier on a shared machine)")
    p.set_defaults(func=run)


def run(args) -> int:
    import statistics
    import sys

    if args.repeats < 1:
        print("corral bench: --repeats must be at least 1", file=sys.stderr)
        return 2
    from corral.engine.benchmark import run_benchmark
    from corral.engine.engine_args import EngineArgs
    from corral.engine.llm_engine import LLMEngine

    model = args.model or _default_model()
    top = max(args.concurrency)
    engine = LLMEngine(EngineArgs(
        model=model, max_model_len=args.input_len + args.output_len + 16, max_num_seqs=top,
        max_num_batched_tokens=max(args.max_num_batched_tokens, top), num_threads=args.threads,
        enable_prefix_caching=False, kv_cache_dtype=args.kv_cache_dtype, **device_kwargs(args),
    ))
    print(f"model {model}  input {args.input_len}  output {args.output_len}  {engine.placement()}")
    header = f"{'conc':>5} {'reqs':>5} {'prefill tok/s':>14} {'output tok/s':>13} " \
             f"{'TTFT ms mean/p50/p99':>24} {'TPOT ms mean/p50/p99':>24}"
    print(header)
    # Warm-up, so no figure is measured on a cold process (first touches of the weights, of the
    # KV cache and of the large activation buffers, allocator growth): the largest concurrency's
    # prompts with a few tokens each, then one whole request of the measured size. With a 4-token
    # warm-up alone, concurrency 1 (the baseline the others are compared with) measured up to 25%
    # slow, and the first large prefill step of a run took up to 1.5x as long as the next one.
    run_benchmark(engine, top, args.input_len, min(args.output_len, 4))
    run_benchmark(engine, 1, args.input_len, args.output_len)
    output: dict[int, list[float]] = {}
    for _ in range(args.repeats):
        for c in args.concurrency:
            r = run_benchmark(engine, c, args.input_len, args.output_len, args.num_requests)
            output.setdefault(c, []).append(r.output_tok_s)
            print(f"{c:>5} {r.num_requests:>5} {r.prefill_tok_s:>14.1f} {r.output_tok_s:>13.1f} "
                  f"{_fmt(r.ttft_ms):>24} {_fmt(r.tpot_ms):>24}", flush=True)
    if args.repeats > 1:
        base = statistics.median(output[args.concurrency[0]])
        print(f"median output tok/s over {args.repeats} repeats (ratio to concurrency {args.concurrency[0]}):")
        for c, values in output.items():
            m = statistics.median(values)
            print(f"{c:>5} {m:>13.1f} {m / base:>7.2f}x")
    return 0


def _fmt(t) -> str:
    return "/".join(f"{v:.1f}" for v in t)


def _default_model() -> str:
    from corral.store.default_model import default_model_path

    return str(default_model_path())
