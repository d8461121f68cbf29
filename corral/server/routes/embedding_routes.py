"""Embedding routes: OpenAI /v1/embeddings, Ollama /api/embed and the older /api/embeddings."""
from __future__ import annotations

import base64
import time

import numpy as np
from fastapi import APIRouter, Depends, Request

from corral.errors import ModelKindError, ValidationError
from corral.server import embedding_protocol as ep
from corral.server.generate_request import parse_keep_alive
from corral.server.model_lease import leased
from corral.server.model_manager import LoadedModel
from corral.server.state import get_state, require_api_key, unless_disconnected
from corral.server.streaming import json_response

router = APIRouter(dependencies=[Depends(require_api_key)])


def embedding_engine(model: LoadedModel):
    """The model's AsyncEmbedder; ModelKindError (400) when it generates text instead."""
    engine = model.engine
    if not hasattr(engine, "embed"):
        raise ModelKindError(f"'{model.name}' is a text-generation model, not an embedding model: it has no "
                             "embeddings; load an embedding model (e.g. a BERT, nomic-bert or Qwen3-Embedding GGUF)")
    return engine


def _openai_inputs(value) -> list:
    if isinstance(value, str):
        return [value]
    if not value:
        raise ValidationError("input", "must not be empty")
    if isinstance(value[0], int):
        return [list(value)]
    return list(value)


def _base64(vector: list[float]) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


@router.post("/v1/embeddings")
async def openai_embeddings(body: ep.EmbeddingRequest, request: Request):
    inputs = _openai_inputs(body.input)
    async with leased(get_state(request).manager, body.model) as model:
        engine = embedding_engine(model)
        vectors, tokens = await unless_disconnected(request, engine.embed(inputs, truncate=False,
                                                                          dimensions=body.dimensions))
    encode = _base64 if body.encoding_format == "base64" else (lambda v: v)
    data = [ep.EmbeddingData(index=i, embedding=encode(v)) for i, v in enumerate(vectors)]
    return json_response(ep.EmbeddingResponse(data=data, model=body.model,
                                              usage=ep.EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)))


@router.post("/api/embed")
async def ollama_embed(body: ep.EmbedRequest, request: Request):
    received = time.monotonic()
    inputs = [body.input] if isinstance(body.input, str) else list(body.input)
    manager = get_state(request).manager
    async with leased(manager, body.model, parse_keep_alive(body.keep_alive)) as model:
        loaded = time.monotonic()
        engine = embedding_engine(model)
        if not inputs:  # Ollama loads the model and answers with no embeddings
            vectors, tokens = [], 0
        else:
            vectors, tokens = await unless_disconnected(request, engine.embed(inputs, truncate=body.truncate,
                                                                              dimensions=body.dimensions))
    now = time.monotonic()
    return json_response(ep.EmbedResponse(model=body.model, embeddings=vectors, total_duration=int((now - received) * 1e9),
                                          load_duration=int((loaded - received) * 1e9), prompt_eval_count=tokens))


@router.post("/api/embeddings")
async def ollama_legacy_embeddings(body: ep.LegacyEmbeddingsRequest, request: Request):
    manager = get_state(request).manager
    async with leased(manager, body.model, parse_keep_alive(body.keep_alive)) as model:
        engine = embedding_engine(model)
        if not body.prompt:
            return json_response(ep.LegacyEmbeddingsResponse(embedding=[]))
        vectors, _ = await unless_disconnected(request, engine.embed([body.prompt], truncate=True))
    return json_response(ep.LegacyEmbeddingsResponse(embedding=vectors[0]))
