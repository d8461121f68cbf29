"""Discover models on the Hugging Face Hub for the web app: search, and a repo's GGUF files by quantization.

Asked through `huggingface_hub` at `HF_ENDPOINT` with `HF_TOKEN` (corral.envs); network failures
become HubUnavailableError (a 503 whose message the app shows as "offline").
"""
from __future__ import annotations

import socket
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from corral import envs
from corral.errors import HubUnavailableError
from corral.server import hub_fit
from corral.store.hub import fetch_listing, is_transport_error, unreachable_message
from corral.store.quants import gguf_choices

SEARCH_LIMIT = 30
PROBE_TIMEOUT_S = 3.0


def check_reachable(endpoint: str) -> None:
    """Fail fast when offline: `huggingface_hub` retries a refused search for ~20 s before giving up."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as e:
        raise HubUnavailableError(unreachable_message(endpoint, e)) from None


def search(query: str, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
    """Repos matching `query`, GGUF repos first (then by downloads): id, downloads, likes, gguf."""
    from huggingface_hub import HfApi

    endpoint = envs.hf_endpoint()
    check_reachable(endpoint)
    api = HfApi(endpoint=endpoint, token=envs.hf_token())
    try:
        # GGUF repos first: ask for them by tag, then for everything, and merge
        found = list(api.list_models(search=query or None, filter="gguf", limit=limit, sort="downloads"))
        found += list(api.list_models(search=query or None, limit=limit, sort="downloads"))
    except Exception as e:
        if is_transport_error(e):
            raise HubUnavailableError(unreachable_message(endpoint, e)) from None
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status is not None:
            raise HubUnavailableError(f"the Hugging Face Hub at {endpoint} answered {status}; try again later") from None
        raise
    repos, seen = [], set()
    for m in found:
        if m.id in seen:
            continue
        seen.add(m.id)
        tags = list(getattr(m, "tags", None) or [])
        gguf = "gguf" in tags or "gguf" in m.id.lower()
        repos.append({"id": m.id, "downloads": getattr(m, "downloads", None) or 0,
                      "likes": getattr(m, "likes", None) or 0, "gguf": gguf})
    return sorted(repos, key=lambda r: (not r["gguf"], -r["downloads"]))[:limit]


def repo_files(repo: str) -> dict[str, Any]:
    """A repo's GGUF choices (quantization, files, total bytes, the name to pull, K+V cache bytes
    per token when its header or config.json tells), and whether it can be pulled as a
    safetensors folder instead; `context_length` is the model's trained context when known."""
    check_reachable(envs.hf_endpoint())
    listing = fetch_listing(repo)
    found = gguf_choices(list(listing.files))
    # one header for all: a repo's quantizations share the model's shape
    metadata = hub_fit.read_gguf_metadata(listing, found[0].files[0]) if found else None
    choices = []
    for choice in found:
        size = sum(listing.files[p].size or 0 for p in choice.files)
        tag = choice.quant or PurePosixPath(choice.files[0]).stem
        choices.append({"quant": choice.quant or "?", "files": list(choice.files), "size": size,
                        "pull": f"hf.co/{repo}:{tag}", "kv_per_token": hub_fit.kv_for_quant(metadata, choice.quant)})
    safetensors = [p for p in listing.files if p.endswith(".safetensors") and "/" not in p]
    folder = None
    if safetensors and "config.json" in listing.files:
        folder = {"size": sum(listing.files[p].size or 0 for p in safetensors), "pull": repo,
                  "kv_per_token": hub_fit.folder_kv_per_token(listing)}
    return {"repo": repo, "commit": listing.commit, "gguf": choices, "folder": folder,
            "context_length": hub_fit.context_length(metadata)}
