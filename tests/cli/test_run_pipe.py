"""`corral run ... | head -c1` ends quietly: the reader going away is no error worth a traceback."""
from __future__ import annotations

import subprocess
import sys

from cli_harness import cli_env


def test_run_into_a_closed_pipe_exits_without_a_traceback(cli_store, closed_host):
    # head exits after the first token's write; the later writes (tokens, the last newline) and
    # the interpreter's final flush meet a closed pipe.
    command = f'"{sys.executable}" -m corral.cli.main run plain "tell me a story" | head -c1; echo "rc=${{PIPESTATUS[0]}}" >&2'
    done = subprocess.run(["bash", "-c", command], env=cli_env(cli_store, closed_host),
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert "BrokenPipeError" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] in ("rc=0", "rc=141"), done.stderr
