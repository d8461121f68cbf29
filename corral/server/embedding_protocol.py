"""Request and response types of the embedding and rerank routes.

- OpenAI `POST /v1/embeddings` (https://platform.openai.com/docs/api-reference/embeddings):
  `input` is a string, a list of strings, a list of token ids or a list of such lists;
  `encoding_format` "float" or "base64" (little-endian float32 bytes); `dimensions` keeps the first
  dimensions (Matryoshka models), renormalized.
- Ollama `POST /api/embed` (`input` string or list, `truncate` default true, `keep_alive`,
  `options`, `dimensions`) and the older `POST /api/embeddings` (`prompt` -> `embedding`).
- Rerank, the Jina/Cohere shape vLLM and llama.cpp accept on `/v1/rerank` and `/rerank`:
  `query`, `documents` (strings, or objects with `text`), `top_n`, `return_documents`; results
  sorted by `relevance_score`, each with the document's `index`.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _none(value: Any) -> bool:
    return value is None


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- OpenAI ------------------------------------------------------------------------------------


class EmbeddingRequest(_Request):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None  # accepted and ignored


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


# -- Ollama ------------------------------------------------------------------------------------


class EmbedRequest(_Request):
    model: str
    input: str | list[str]
    truncate: bool = True
    dimensions: int | None = None
    keep_alive: float | str | None = None
    options: dict[str, Any] | None = None  # accepted; an embedding has no sampling options


class EmbedResponse(BaseModel):
    model: str
    embeddings: list[list[float]]
    total_duration: int  # nanoseconds
    load_duration: int
    prompt_eval_count: int


class LegacyEmbeddingsRequest(_Request):
    model: str
    prompt: str
    keep_alive: float | str | None = None
    options: dict[str, Any] | None = None


class LegacyEmbeddingsResponse(BaseModel):
    embedding: list[float]


# -- rerank ------------------------------------------------------------------------------------


class RerankRequest(_Request):
    model: str | None = None
    query: str
    documents: list[str | dict[str, Any]]
    top_n: int | None = None
    return_documents: bool = False
    truncate: bool = True  # cut pairs longer than the model's context (vLLM and llama.cpp do)


class RerankDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankDocument | None = Field(default=None, exclude_if=_none)


class RerankUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(BaseModel):
    id: str
    object: Literal["rerank"] = "rerank"
    model: str
    results: list[RerankResult]
    usage: RerankUsage
