"""The first generations after a model loads: load time, then for each of --runs generations of
--tokens tokens its time a token and the page faults the process took meanwhile (a first read of
a weight's pages faults unless loading mapped them in; see `populate_file_weights`).

    python benchmarks/first_tokens.py /tmp/corral-bench/qwen3-30b-a3b-6l-q8_0.gguf --threads 2
    python benchmarks/first_tokens.py FILE --threads 2 --no-populate    # pages mapped as first read
"""
from __future__ import annotations

import argparse
import resource
import time


def page_faults() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_minflt + usage.ru_majflt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-populate", action="store_true", help="leave the weights' pages to their first read")
    args = parser.parse_args()

    from corral import LLM, SamplingParams
    from corral.engine import loading

    if args.no_populate:
        loading.populate_file_weights = lambda model: 0
    t0 = time.perf_counter()
    llm = LLM(args.model, num_threads=args.threads, max_model_len=args.tokens + 64)
    print(f"load {time.perf_counter() - t0:.2f} s")
    params = SamplingParams(temperature=0, max_tokens=args.tokens, ignore_eos=True)
    for run in range(args.runs):
        prompt = [1000 + 7 * run + j for j in range(8)]
        faults = page_faults()
        t = time.perf_counter()
        llm.generate([{"prompt_token_ids": prompt}], params)
        ms = (time.perf_counter() - t) * 1000 / args.tokens
        faults = page_faults() - faults
        print(f"generation {run + 1}: {ms:.1f} ms a token, {faults} page faults")


if __name__ == "__main__":
    main()
