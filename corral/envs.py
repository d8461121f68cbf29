"""Every environment variable corral reads, in one place.

Read at call time (not import time) so tests can set them with monkeypatch.
"""
from __future__ import annotations

import os
from pathlib import Path


def corral_home() -> Path:
    """Root of the local model store (`CORRAL_HOME`, default `~/.corral`)."""
    return Path(os.environ.get("CORRAL_HOME") or Path.home() / ".corral").expanduser()


def api_key() -> str | None:
    """Bearer key the server requires when set (`CORRAL_API_KEY`)."""
    return os.environ.get("CORRAL_API_KEY") or None


def host() -> str:
    """Address the CLI talks to and `serve` binds (`CORRAL_HOST`, like OLLAMA_HOST: host[:port])."""
    return os.environ.get("CORRAL_HOST", "127.0.0.1:11435")


def num_threads() -> int | None:
    """CPU threads for the model (`CORRAL_NUM_THREADS`); None lets torch decide."""
    value = os.environ.get("CORRAL_NUM_THREADS")
    return int(value) if value else None


def hf_endpoint() -> str:
    """Hugging Face Hub address (`HF_ENDPOINT`); tests point it at a loopback server."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hf_token() -> str | None:
    """Token for gated Hub repos (`HF_TOKEN`)."""
    return os.environ.get("HF_TOKEN") or None


def max_body_size() -> str | None:
    """Largest request body the server reads (`CORRAL_MAX_BODY_SIZE`, e.g. "16MiB" or bytes);
    None: the server's default (16 MiB)."""
    return os.environ.get("CORRAL_MAX_BODY_SIZE") or None
