"""`corral bench serve` against a real corral server on loopback: rows that add up, errors counted."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from corral.cli.bench_serve import percentiles, run_load


def test_rows_per_concurrency_with_consistent_figures(server, tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "corral.cli.main", "bench", "serve", "--base-url", server.url,
         "--model", server.model, "--concurrency", "1", "3", "--input-len", "6", "--output-len", "5",
         "--num-requests", "3", "--token-range", "10", "200", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    assert [r[:3] for r in rows] == [["1", "3", "0"], ["3", "3", "0"]]
    saved = json.loads(out.read_text())
    for r in saved:
        assert r["failed"] == 0 and r["output_tok_s"] > 0
        # 3 requests of 5 tokens: elapsed time and throughput agree on 15 tokens.
        assert abs(r["output_tok_s"] * r["elapsed_s"] - 15) < 1e-6
        mean, p50, p90, p99 = r["itl_ms"]
        assert 0 < p50 <= p90 <= p99
        assert 0 < r["ttft_ms"][1] <= r["ttft_ms"][3]


def test_failed_requests_are_counted_not_raised(server):
    result = asyncio.run(run_load(server.url, "no-such-model", 2, 2, 4, 3, token_range=(10, 20)))
    assert result.failed == 2 and result.output_tok_s == 0


def test_percentiles_nearest_rank():
    assert percentiles([]) == (0.0, 0.0, 0.0, 0.0)
    values = [float(v) for v in range(1, 101)]
    mean, p50, p90, p99 = percentiles(values)
    assert (mean, p50, p90, p99) == (50.5, 50.0, 90.0, 99.0)
