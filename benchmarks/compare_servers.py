"""`corral serve` against llama.cpp's `llama-server` on one GGUF file, each server alone on the CPU.

For each server in turn: start it on a free loopback port, wait until it answers, run
`corral bench serve`'s load (streamed /v1/completions, random token-id prompts, ignore_eos) at each
concurrency, stop it. llama-server is restarted for each concurrency with as many slots
(`-np`) as requests in flight and a context of slots x (input + output + 64) tokens, as its
continuous batching needs; corral serves every concurrency from one process. Output tokens/s of
corral over llama-server's at each concurrency is printed as a ratio (above 1: corral is faster).

    bash benchmarks/build_llama_server.sh             # once: /tmp/llama-server/bin/llama-server
    python benchmarks/compare_servers.py FILE.gguf --threads 2 --concurrency 1 4 16 64
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request

from corral.cli.bench_serve import run_load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError("the server did not become healthy in time")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure(url: str, model: str | None, args, concurrency: int) -> float:
    rates = []
    for _ in range(args.repeats):
        r = asyncio.run(run_load(url, model, concurrency, args.num_requests or max(4, 2 * concurrency),
                                 args.input_len, args.output_len))
        if r.failed:
            raise RuntimeError(f"{r.failed} of {r.num_requests} requests failed at concurrency {concurrency}")
        print(f"    c={concurrency:<3} {r.output_tok_s:8.1f} tok/s  TTFT p50 {r.ttft_ms[1]:7.1f} ms  "
              f"ITL p50 {r.itl_ms[1]:6.1f} ms", flush=True)
        rates.append(r.output_tok_s)
    return sorted(rates)[len(rates) // 2]


def run_corral(args) -> dict[int, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, "-m", "corral.cli.main", "serve", args.model, "--port", str(port),
           "--max-model-len", str(args.input_len + args.output_len + 64), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env)
    try:
        wait_healthy(url, proc)
        asyncio.run(run_load(url, args.model, 1, 1, args.input_len, 4))  # warm-up
        return {c: measure(url, args.model, args, c) for c in args.concurrency}
    finally:
        stop(proc)


def run_llama_server(args) -> dict[int, float]:
    rates = {}
    for c in args.concurrency:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        ctx = c * (args.input_len + args.output_len + 64)
        cmd = [args.llama_server, "-m", args.model, "--port", str(port), "-t", str(args.threads),
               "-tb", str(args.threads), "-np", str(c), "-c", str(ctx), "--log-disable"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_healthy(url, proc)
            asyncio.run(run_load(url, None, 1, 1, args.input_len, 4))  # warm-up
            rates[c] = measure(url, None, args, c)
        finally:
            stop(proc)
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a GGUF file")
    p.add_argument("--llama-server", default="/tmp/llama-server/bin/llama-server")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--num-requests", type=int, default=None)
    p.add_argument("--repeats", type=int, default=1, help="runs per concurrency; the median is kept")
    args = p.parse_args()
    print("corral serve:")
    corral = run_corral(args)
    print("llama-server:")
    peer = run_llama_server(args)
    print(f"{'conc':>5} {'corral tok/s':>13} {'llama-server':>13} {'ratio':>7}")
    for c in args.concurrency:
        print(f"{c:>5} {corral[c]:>13.1f} {peer[c]:>13.1f} {corral[c] / peer[c]:>6.2f}x")


if __name__ == "__main__":
    main()
