"""What `LLM` needs to serve embedding and reranking models: pick the Embedder for such a model,
and say clearly when a call does not fit the model's kind."""
from __future__ import annotations

from typing import Any

from corral.errors import ModelKindError

KIND_NAMES = {"embed": "an embedding model", "rerank": "a reranking (cross-encoder) model"}


def load_embedder(model: str):
    """An Embedder when `model` (path or store name) is an embedding or reranking model, else None."""
    from corral.engine.loading import resolve_path
    from corral.engine.model_kind import GENERATE, model_kind

    try:
        path = resolve_path(model)
    except Exception:
        return None  # the generation engine reports the unknown name
    if model_kind(path, model) == GENERATE:
        return None
    from corral.engine.embedder import Embedder
    from corral.engine.embedding_loader import load_embedding_model

    return Embedder(load_embedding_model(path, model))


def not_a_generator(embedder) -> ModelKindError:
    return ModelKindError(f"this is {KIND_NAMES[embedder.kind]}, not a text-generation model: use "
                          f"LLM.{embedder.kind}() instead of generate() or chat()")


def require_kind(embedder, kind: str):
    if embedder is None:
        needs = "an embedding model" if kind == "embed" else (
            "a reranker (a Qwen3-Reranker folder is told by its name, its README or config.json's "
            "\"classifier_from_token\": [\"no\", \"yes\"])")
        raise ModelKindError(f"this is a text-generation model, not {KIND_NAMES[kind]}: LLM.{kind}() needs {needs}")
    if embedder.kind != kind:
        raise ModelKindError(f"this is {KIND_NAMES[embedder.kind]}, not {KIND_NAMES[kind]}; "
                             f"use LLM.{embedder.kind}()")
    return embedder


def ranked(scores: list[float], top_n: int | None) -> list[dict[str, Any]]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [{"index": i, "relevance_score": scores[i]} for i in order[:top_n]]
