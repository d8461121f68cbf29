"""Rerank routes: POST /v1/rerank, /rerank and /v2/rerank (the Jina/Cohere shape vLLM and llama.cpp accept)."""
from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request

from corral.errors import ModelKindError, ValidationError
from corral.server import embedding_protocol as ep
from corral.server.model_lease import default_model_name, leased
from corral.server.state import get_state, require_api_key, unless_disconnected
from corral.server.streaming import json_response

router = APIRouter(dependencies=[Depends(require_api_key)])


def _texts(documents: list) -> list[str]:
    texts = []
    for i, doc in enumerate(documents):
        text = doc if isinstance(doc, str) else doc.get("text")
        if not isinstance(text, str):
            raise ValidationError("documents", f"document {i} is neither a string nor an object with a 'text' string")
        texts.append(text)
    return texts


async def _rerank(body: ep.RerankRequest, request: Request):
    texts = _texts(body.documents)
    if body.top_n is not None and body.top_n < 0:
        raise ValidationError("top_n", f"must be at least 0, not {body.top_n}")
    manager = get_state(request).manager
    name = default_model_name(manager, body.model)
    async with leased(manager, name) as model:
        if not hasattr(model.engine, "rerank"):
            raise ModelKindError(f"'{model.name}' is a text-generation model, not a reranker: load a cross-encoder "
                                 "(e.g. a BGE reranker) to rerank; a Qwen3-Reranker folder is told by its name, its "
                                 "README or config.json's \"classifier_from_token\": [\"no\", \"yes\"]")
        scores, tokens = ([], 0) if not texts else await unless_disconnected(
            request, model.engine.rerank(body.query, texts, truncate=body.truncate))
    order = sorted(range(len(texts)), key=lambda i: -scores[i])
    if body.top_n is not None:
        order = order[:body.top_n]
    results = [ep.RerankResult(index=i, relevance_score=scores[i],
                               document=ep.RerankDocument(text=texts[i]) if body.return_documents else None)
               for i in order]
    return json_response(ep.RerankResponse(id=f"rerank-{uuid.uuid4().hex}", model=name, results=results,
                                           usage=ep.RerankUsage(prompt_tokens=tokens, total_tokens=tokens)))


@router.post("/v1/rerank")
async def rerank_v1(body: ep.RerankRequest, request: Request):
    return await _rerank(body, request)


@router.post("/rerank")
async def rerank(body: ep.RerankRequest, request: Request):
    return await _rerank(body, request)


@router.post("/v2/rerank")
async def rerank_v2(body: ep.RerankRequest, request: Request):
    return await _rerank(body, request)
