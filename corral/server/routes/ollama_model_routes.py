"""Ollama-compatible model routes: /api/tags, /api/show, /api/ps, /api/version."""
from __future__ import annotations

import math

from fastapi import APIRouter, Depends, Request

import corral
from corral.errors import ValidationError
from corral.server import model_info
from corral.server import ollama_protocol as ol
from corral.server.model_manager import LoadedModel
from corral.server.model_source import ResolvedModel
from corral.server.state import get_state, require_api_key
from corral.server.streaming import json_response

router = APIRouter(dependencies=[Depends(require_api_key)])
FOREVER = "2318-11-26T00:00:00Z"  # what Ollama shows for a model kept loaded forever


def _listed(resolved: ResolvedModel, config) -> ol.ListedModel:
    return ol.ListedModel(
        name=resolved.name, model=resolved.name, modified_at=model_info.rfc3339(resolved.modified_at),
        size=resolved.size_bytes, digest=resolved.digest, details=model_info.details(resolved, config),
    )


@router.get("/api/tags")
async def tags(request: Request):
    manager = get_state(request).manager
    loaded = {m.resolved.key: m for m in manager.loaded()}
    listed = {}
    for resolved in manager.source.list():
        model = loaded.get(resolved.key)
        listed[resolved.key] = _listed(resolved, model.engine.model_config if model else None)
    for key, m in loaded.items():
        listed.setdefault(key, _listed(m.resolved, m.engine.model_config))
    damaged = getattr(manager.source, "damaged", lambda: [])()
    for entry in damaged:
        listed.setdefault(entry.name, _listed_damaged(entry))
    return json_response(ol.ListResponse(models=list(listed.values())))


def _listed_damaged(entry) -> ol.ListedModel:
    """A store model that cannot be used, listed with `damaged` saying why (not left out)."""
    details = ol.ModelDetails(format="", family="", families=[], parameter_size="", quantization_level="")
    return ol.ListedModel(
        name=entry.name, model=entry.name, modified_at=model_info.rfc3339(entry.modified_at.timestamp()),
        size=entry.size, digest=entry.digest.removeprefix("sha256:"), details=details, damaged=entry.damage,
    )


def _size_vram(model: LoadedModel) -> int:
    device = str(getattr(model.engine, "device", "cpu"))
    return model.size_bytes if device.startswith("cuda") else 0


@router.get("/api/ps")
async def ps(request: Request):
    running = []
    for m in get_state(request).manager.loaded():
        expires = FOREVER if math.isinf(m.expires_at) else model_info.rfc3339(m.expires_at)
        running.append(ol.RunningModel(
            name=m.name, model=m.name, size=m.size_bytes, digest=m.resolved.digest,
            details=model_info.details(m.resolved, m.engine.model_config), expires_at=expires,
            size_vram=_size_vram(m), context_length=m.engine.max_model_len,
            placement=getattr(m.engine, "placement_info", None),
        ))
    return json_response(ol.ProcessResponse(models=running))


@router.post("/api/show")
async def show(body: ol.ShowRequest, request: Request):
    """Describe a model; one not loaded yet is loaded (its config and template live in its files)."""
    name = body.model or body.name
    if not name:
        raise ValidationError("model", "is required")
    manager = get_state(request).manager
    model = manager.find_loaded(name) or await manager.load(name)
    engine, resolved = model.engine, model.resolved
    template = resolved.template or engine.tokenizer.chat_template or ""
    capabilities = ["completion"] + (["tools"] if "tools" in template else [])
    if hasattr(engine, "embed"):  # an embedding model (AsyncEmbedder)
        capabilities = ["embedding"]
    return json_response(ol.ShowResponse(
        parameters=model_info.parameters_text(resolved.defaults.options),
        template=template,
        system=resolved.defaults.system,
        details=model_info.details(resolved, engine.model_config),
        model_info=model_info.model_info(engine.model_config),
        capabilities=capabilities,
        modified_at=model_info.rfc3339(resolved.modified_at),
    ))


@router.get("/api/version")
async def version():
    return json_response(ol.VersionResponse(version=corral.__version__))
