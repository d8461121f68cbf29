"""Discover models on the Hugging Face Hub for the web app: search, and a repo's GGUF files by quantization.

Asked through `huggingface_hub` at `HF_ENDPOINT` with `HF_TOKEN` (corral.envs); network failures
become HubUnavailableError (a 503 whose message the app shows as "offline").
"""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from corral import envs
from corral.errors import HubUnavailableError
from corral.store.hub import fetch_listing, is_transport_error, unreachable_message
from corral.store.quants import gguf_choices

SEARCH_LIMIT = 30


def search(query: str, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
    """Repos matching `query`, GGUF repos first (then by downloads): id, downloads, likes, gguf."""
    from huggingface_hub import HfApi

    endpoint = envs.hf_endpoint()
    api = HfApi(endpoint=endpoint, token=envs.hf_token())
    try:
        found = list(api.list_models(search=query or None, limit=limit, sort="downloads"))
    except Exception as e:
        if is_transport_error(e):
            raise HubUnavailableError(unreachable_message(endpoint, e)) from None
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status is not None:
            raise HubUnavailableError(f"the Hugging Face Hub at {endpoint} answered {status}; try again later") from None
        raise
    repos = []
    for m in found:
        tags = list(getattr(m, "tags", None) or [])
        gguf = "gguf" in tags or "gguf" in m.id.lower()
        repos.append({"id": m.id, "downloads": getattr(m, "downloads", None) or 0,
                      "likes": getattr(m, "likes", None) or 0, "gguf": gguf})
    return sorted(repos, key=lambda r: (not r["gguf"], -r["downloads"]))


def repo_files(repo: str) -> dict[str, Any]:
    """A repo's GGUF choices (quantization, files, total bytes, the name to pull), and whether it
    can be pulled as a safetensors folder instead."""
    listing = fetch_listing(repo)
    choices = []
    for choice in gguf_choices(list(listing.files)):
        size = sum(listing.files[p].size or 0 for p in choice.files)
        tag = choice.quant or PurePosixPath(choice.files[0]).stem
        choices.append({"quant": choice.quant or "?", "files": list(choice.files), "size": size,
                        "pull": f"hf.co/{repo}:{tag}"})
    safetensors = [p for p in listing.files if p.endswith(".safetensors") and "/" not in p]
    folder = None
    if safetensors and "config.json" in listing.files:
        folder = {"size": sum(listing.files[p].size or 0 for p in safetensors), "pull": repo}
    return {"repo": repo, "commit": listing.commit, "gguf": choices, "folder": folder}
