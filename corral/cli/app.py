"""`corral app`: open the web app in a browser, starting a server first if none answers at CORRAL_HOST.

A server this command starts runs as a child process (its log in CORRAL_HOME/logs/app-serve.log)
and stops when the command is interrupted (Ctrl+C); a server that was already running is left alone.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
import webbrowser

from corral import envs
from corral.errors import CorralError

START_TIMEOUT_S = 120.0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("app", help="open the web app (starting a server if none is running)",
                              description="Open corral's web app in a browser. Uses the server at CORRAL_HOST, "
                                          "or starts one there (stopped again with Ctrl+C).")
    p.add_argument("--no-browser", action="store_true", help="print the address instead of opening a browser")
    p.add_argument("serve_args", nargs=argparse.REMAINDER, metavar="-- SERVE_ARGS",
                   help="arguments for the server it starts, after --: corral app -- --memory-budget 8")
    p.set_defaults(func=run)


def base_url() -> str:
    value = envs.host()
    return value.rstrip("/") if "://" in value else f"http://{value}"


def is_up(url: str, timeout: float = 0.5) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def start_server(url: str, serve_args: list[str]) -> subprocess.Popen:
    """`corral serve` in a child process, its output in CORRAL_HOME/logs/app-serve.log; waits until it answers."""
    logs = envs.corral_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "app-serve.log"
    with open(log_path, "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "corral.cli.main", "serve", *serve_args],
                                 stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not is_up(url):
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise CorralError(f"the server did not start at {url}; see {log_path}")
        time.sleep(0.2)
    return child


def run(args: argparse.Namespace) -> int:
    url = base_url()
    serve_args = [a for a in args.serve_args if a != "--"]
    child = None if is_up(url) else start_server(url, serve_args)
    print(f"corral app: {url}/", flush=True)
    if not args.no_browser:
        webbrowser.open(f"{url}/")
    if child is None:
        return 0
    print("the server runs until you press Ctrl+C", flush=True)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
        return 0
