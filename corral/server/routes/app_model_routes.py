"""The web app's view of models and the server: the store with details and fit, one model's
details, Hub search and a repo's files, and the server's loaded models, requests and token rate.

Loading, unloading, copying, deleting and pulling use the public API (/api/generate, /api/copy,
/api/delete, /api/pull) like any other client; these routes only describe.
"""
from __future__ import annotations

import asyncio
import math
from typing import Any

from fastapi import APIRouter, Depends, Request

from corral import store
from corral.errors import CorralError
from corral.server import fit, hub_search
from corral.server.model_source import ResolvedModel
from corral.server.state import ServerState, get_state, require_api_key

router = APIRouter(prefix="/app/api", dependencies=[Depends(require_api_key)])
DEFAULT_CONTEXT = 4096


def _free(state: ServerState) -> int:
    return fit.free_bytes(state.manager.memory_budget, state.manager.used_bytes())


def _describe(state: ServerState, resolved: ResolvedModel, context: int, free: int) -> dict[str, Any]:
    info: dict[str, Any] = {}
    source = None
    try:
        shown = store.show(resolved.name, home=state.store_home)
        info = shown.model_info
        source = shown.manifest.source or None
    except (CorralError, OSError):
        pass
    loaded = state.manager.find_loaded(resolved.name)
    return {
        "name": resolved.name, "size": resolved.size_bytes, "kind": resolved.kind,
        "architecture": info.get("architecture") or resolved.details.get("family"),
        "parameter_count": info.get("parameter_count"),
        "parameter_size": resolved.details.get("parameter_size"),
        "quantization": info.get("quantization") or resolved.details.get("quantization_level"),
        "context_length": info.get("context_length"),
        "source": source, "modified_at": resolved.modified_at,
        "loaded": loaded is not None,
        # a loaded model's own memory would be free again for it: it is not counted against it
        "fit": fit.estimate(resolved.size_bytes, fit.kv_bytes_per_token(resolved.path, resolved.kind), context,
                            free + (loaded.size_bytes if loaded is not None and state.manager.memory_budget else 0)),
    }


@router.get("/models")
async def models(request: Request, context: int = DEFAULT_CONTEXT):
    state = get_state(request)
    free = _free(state)
    resolved = await asyncio.to_thread(state.manager.source.list)
    described = await asyncio.to_thread(lambda: [_describe(state, r, context, free) for r in resolved])
    return {"models": described, "free": free, "context": context}


def gguf_metadata(path) -> dict[str, Any]:
    """A GGUF file's metadata without its long arrays (vocabularies, merges): scalars and short lists."""
    from corral.loader.gguf_file import GGUFFile

    try:
        meta = GGUFFile(path).metadata
    except Exception:  # tolerant: details still show without it
        return {}
    shown = {}
    for key, value in meta.items():
        if isinstance(value, (list, tuple)):
            if len(value) > 16:
                shown[key] = f"[{len(value)} values]"
                continue
            value = list(value)
        if isinstance(value, str) and len(value) > 500:
            value = value[:500] + "…"
        shown[key] = value if isinstance(value, (str, int, float, bool, list)) else str(value)
    return shown


@router.get("/models/{name:path}/details")
async def details(name: str, request: Request):
    state = get_state(request)
    shown = await asyncio.to_thread(store.show, name, home=state.store_home)
    info = {k: v for k, v in shown.model_info.items() if k != "chat_template"}
    metadata = {}
    if shown.manifest.kind == "gguf":
        from corral.store.layout import StoreLayout

        blob = StoreLayout.at(state.store_home).blob_path(shown.manifest.layers[0].digest)
        metadata = await asyncio.to_thread(gguf_metadata, blob)
    return {"gguf_metadata": metadata, "name": shown.name, "digest": shown.digest, "details": shown.details, "model_info": info,
            "template": shown.template, "license": shown.license, "parameters": shown.parameters,
            "system": shown.system, "source": shown.manifest.source,
            "files": [{"name": l.filename, "size": l.size, "digest": l.digest} for l in shown.manifest.layers]}


@router.get("/hub/search")
async def hub_search_route(q: str = ""):
    return {"repos": await asyncio.to_thread(hub_search.search, q.strip())}


@router.get("/hub/repo")
async def hub_repo(repo: str, request: Request, context: int = DEFAULT_CONTEXT):
    listing = await asyncio.to_thread(hub_search.repo_files, repo.strip())
    free = _free(get_state(request))
    # weights plus the KV cache at `context`, as the server counts them when it loads
    for choice in listing["gguf"] + ([listing["folder"]] if listing["folder"] else []):
        choice["fit"] = fit.estimate(choice["size"], choice.pop("kv_per_token"), context, free)
    listing["context"] = context
    return listing


@router.get("/loading")
async def loading(request: Request):
    """Model loads in flight, with their progress (tensors loaded of total) and context length."""
    return {"loading": [load.to_json() for load in get_state(request).manager.loading()]}


@router.get("/system")
async def system(request: Request):
    state = get_state(request)
    loaded = []
    running = waiting = 0
    for m in state.manager.loaded():
        stats = m.engine.stats()
        running += stats.num_running
        waiting += stats.num_waiting
        loaded.append({
            "name": m.name, "size": m.size_bytes, "refs": m.refs,
            "expires_at": None if math.isinf(m.expires_at) else m.expires_at,
            "context_length": m.context_length,
            "running": stats.num_running, "waiting": stats.num_waiting,
            "kv_cache_usage": stats.kv_cache_usage, "generation_tokens": stats.generation_tokens_total,
        })
    base = str(request.base_url).rstrip("/")
    return {
        "loaded": loaded, "running": running, "waiting": waiting, "token_rates": state.token_history.rates(),
        "loading": [load.to_json() for load in state.manager.loading()],
        "memory": {"free": _free(state), "budget": state.manager.memory_budget, "used": state.manager.used_bytes()},
        "base_url": base, "openai_base_url": base + "/v1", "auth": state.api_key is not None,
    }
