"""`corral generate` prints the same continuation as the Python API."""
from __future__ import annotations

import subprocess
import sys

from corral import LLM, SamplingParams


def test_generate_prints_the_greedy_continuation(tiny_models):
    model = tiny_models("llama31", "Q8_0")
    prompt = "The capital of France is"
    result = subprocess.run(
        [sys.executable, "-m", "corral.cli.main", "generate", str(model), prompt,
         "--temperature", "0", "--max-tokens", "8", "--max-model-len", "64"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    expected = LLM(str(model), max_model_len=64).generate(
        [prompt], SamplingParams(temperature=0, max_tokens=8))[0].outputs[0].text
    assert result.stdout == expected + "\n"


def test_generate_reports_a_bad_file_without_a_traceback(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 20)
    result = subprocess.run([sys.executable, "-m", "corral.cli.main", "generate", str(bad), "hi"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "broken.gguf" in result.stderr and "Traceback" not in result.stderr
