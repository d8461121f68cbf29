"""`corral bench` on a tiny model: one row per concurrency, with figures that add up."""
from __future__ import annotations

import subprocess
import sys

import pytest

from corral.engine.benchmark import run_benchmark
from corral.engine.engine_args import EngineArgs
from corral.engine.llm_engine import LLMEngine


def test_bench_prints_a_row_per_concurrency(tiny_models):
    model = tiny_models("qwen2", "Q8_0")
    result = subprocess.run(
        [sys.executable, "-m", "corral.cli.main", "bench", str(model), "--concurrency", "1", "4",
         "--input-len", "8", "--output-len", "6", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"model {model}") and lines[0].endswith("KV cache float16")  # quantized: auto
    assert "weights quantized, int8 activations" in lines[0]
    rows = [line.split() for line in lines[2:]]
    assert [r[:2] for r in rows] == [["1", "1"], ["4", "4"]]
    for r in rows:
        prefill, output = float(r[2]), float(r[3])
        ttft = [float(v) for v in r[4].split("/")]
        tpot = [float(v) for v in r[5].split("/")]
        assert prefill > 0 and output > 0
        assert all(v > 0 for v in ttft + tpot)
        assert ttft[1] <= ttft[2] and tpot[1] <= tpot[2]   # p50 <= p99


def test_repeats_print_medians_and_ratios(tiny_models):
    model = tiny_models("qwen2", "Q8_0")
    args = [sys.executable, "-m", "corral.cli.main", "bench", str(model), "--concurrency", "1", "2",
            "--input-len", "4", "--output-len", "3", "--threads", "1"]
    result = subprocess.run(args + ["--repeats", "2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[2:6]] == ["1", "2", "1", "2"]
    assert lines[6].startswith("median output tok/s over 2 repeats")
    summary = {int(line.split()[0]): line.split()[1:] for line in lines[7:]}
    assert set(summary) == {1, 2} and summary[1][1] == "1.00x"
    for c, (median, ratio) in summary.items():
        runs = sorted(float(line.split()[3]) for line in lines[2:6] if line.split()[0] == str(c))
        assert float(median) == pytest.approx(sum(runs) / 2, abs=0.06)
        assert float(ratio[:-1]) == pytest.approx(float(median) / float(summary[1][0]), abs=0.006)
    bad = subprocess.run(args + ["--repeats", "0"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--repeats" in bad.stderr and "Traceback" not in bad.stderr


def test_run_benchmark_counts_every_token(tiny_models):
    engine = LLMEngine(EngineArgs(model=str(tiny_models("llama31", "Q8_0")), max_model_len=64,
                                  max_num_seqs=8, num_threads=1))
    r = run_benchmark(engine, concurrency=3, input_len=10, output_len=5, num_requests=7)
    assert (r.concurrency, r.num_requests) == (3, 7)
    assert r.output_tok_s * r.elapsed_s == pytest.approx(7 * 5)
    assert 0 < r.ttft_ms[1] <= r.ttft_ms[2]
    assert r.tpot_ms[0] > 0
    assert not engine.has_unfinished()
    assert engine.scheduler.kv_cache.num_free_blocks == engine.scheduler.config.num_blocks


def test_kv_cache_dtype_flag(tiny_models):
    model = tiny_models("qwen2", "Q8_0")
    args = [sys.executable, "-m", "corral.cli.main", "bench", str(model), "--input-len", "4", "--output-len", "2",
            "--threads", "1"]
    result = subprocess.run(args + ["--kv-cache-dtype", "float32"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].endswith("KV cache float32")
    bad = subprocess.run(args + ["--kv-cache-dtype", "int8"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--kv-cache-dtype" in bad.stderr


def test_serve_passes_the_kv_cache_dtype_to_engines():
    import argparse

    from corral.cli import serve

    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers())
    assert serve.engine_kwargs(parser.parse_args(["serve", "--kv-cache-dtype", "float32"]))["kv_cache_dtype"] == "float32"
    assert "kv_cache_dtype" not in serve.engine_kwargs(parser.parse_args(["serve"]))  # auto: the engine decides
