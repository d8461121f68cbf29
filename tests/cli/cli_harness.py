"""Helpers for `corral run` tests: a store model made from a Modelfile, greedy references, a
closed port for CORRAL_HOST (so `run` works in-process), and a pseudo-terminal driver."""
from __future__ import annotations

import codecs
import os
import pty
import re
import select
import signal
import socket
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(home: Path, host: str) -> dict[str, str]:
    """Environment for a `corral` child process: this store, this server address, one thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(CORRAL_HOME=str(home), CORRAL_HOST=host, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


class Terminal:
    """`python -m corral.cli.main ARGS` on a pseudo-terminal: type into it, read what it prints.

    Output is decoded and its line endings normalized to "\\n" (the terminal writes "\\r\\n")."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its controlling terminal, so ^C sends SIGINT
            os.execve(sys.executable, [sys.executable, "-m", "corral.cli.main", *args], env)
        self.output = ""
        self.seen = 0  # how much of `output` earlier reads consumed
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def line(self, text: str) -> None:
        self.send(text + "\r")

    def _read(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # the child is gone
            return False
        if not data:
            return False
        self.output += self._decoder.decode(data).replace("\r\n", "\n")
        return True

    def expect(self, pattern: str, timeout_s: float = 120.0) -> str:
        """Read until `pattern` (a regex) appears after what earlier calls consumed; returns the
        text before the match and consumes through it. TimeoutError with the output if it never does."""
        deadline = time.monotonic() + timeout_s
        regex = re.compile(pattern)
        while True:
            m = regex.search(self.output, self.seen)
            if m:
                before = self.output[self.seen:m.start()]
                self.seen = m.end()
                return before
            left = deadline - time.monotonic()
            if left <= 0 or (not self._read(min(left, 1.0)) and self.exited(0)):
                raise TimeoutError(f"no {pattern!r} in the terminal; it showed:\n{self.output[self.seen:]}")

    def wait_for_output(self, timeout_s: float = 120.0) -> None:
        """Block until anything new is printed."""
        start = len(self.output)
        deadline = time.monotonic() + timeout_s
        while len(self.output) == start:
            if time.monotonic() > deadline:
                raise TimeoutError("nothing printed")
            self._read(0.5)

    def exited(self, timeout_s: float) -> bool:
        if getattr(self, "status", None) is not None:
            return True
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def wait(self, timeout_s: float = 30.0) -> int:
        """The exit code; the child is killed if it does not exit in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._read(0.1)
            if getattr(self, "status", None) is not None or self.exited(0):
                return os.waitstatus_to_exitcode(self.status)
        self.close()
        raise TimeoutError(f"the program did not exit; it showed:\n{self.output[self.seen:]}")

    def close(self) -> None:
        if getattr(self, "status", None) is None and not self.exited(0):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.status = -9
        os.close(self.fd)


def greedy_reply(llm, messages: list[dict], max_tokens: int = 8, stop: list[str] | None = None) -> str:
    from corral.core.sampling_params import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, stop=stop)
    return llm.chat(messages, params)[0].outputs[0].text
