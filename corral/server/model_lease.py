"""Borrow a loaded model for one request that is not a generation (tokenize, embed, rerank).

`leased(manager, name)` loads the model if needed, holds one reference for the block and releases
it with the request's keep-alive, whatever happens inside. `default_model_name` is the model a
request that names none uses (vLLM and llama.cpp serve one model, so their clients may omit it).
"""
from __future__ import annotations

import contextlib
from typing import AsyncIterator

from corral.errors import ValidationError
from corral.server.model_manager import LoadedModel, ModelManager


def default_model_name(manager: ModelManager, name: str | None) -> str:
    """`name`, else the most recently used loaded model; ValidationError when neither exists."""
    if name:
        return name
    loaded = manager.loaded()
    if not loaded:
        raise ValidationError("model", "no model is loaded: name the model in the request's 'model' field")
    return loaded[0].name


@contextlib.asynccontextmanager
async def leased(manager: ModelManager, name: str, keep_alive: float | None = None) -> AsyncIterator[LoadedModel]:
    model = await manager.acquire(name)
    try:
        yield model
    finally:
        manager.release(model, keep_alive)
