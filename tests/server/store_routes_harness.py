"""Helpers for the store-route tests: a real server over a temporary store, a fake Hub serving a
tiny real GGUF, NDJSON reading and store snapshots."""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))
from store_fake_hub import FakeHub  # noqa: E402

GGUF_REPO = "acme/tiny-GGUF"


def start_fake_hub(monkeypatch, gguf: Path) -> FakeHub:
    """A loopback Hub with GGUF_REPO holding `gguf` as Q8_0; HF_ENDPOINT points at it."""
    import huggingface_hub.constants

    hub = FakeHub().start()
    hub.add_repo(GGUF_REPO, {"README.md": b"# tiny\n", "tiny-q8_0.gguf": gguf.read_bytes()})
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return hub


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` with its sha256, to prove an operation changed nothing."""
    state = {}
    if root.exists():
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                state[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif path.is_symlink():
                state[path.relative_to(root).as_posix()] = "-> " + os.readlink(path)
    return state


def ndjson(response: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]
