"""Request and response types of POST /tokenize and /detokenize, in vLLM's and llama.cpp's shapes.

One request type accepts both servers' fields: vLLM sends `prompt` (or `messages`) with
`add_special_tokens` (default true for a prompt, false for messages) and `return_token_strs`;
llama.cpp sends `content` with `add_special` (default false) and `with_pieces`. The response holds
both servers' fields: `tokens` (ids, or llama.cpp's `{id, piece}` objects with `with_pieces`),
`count` and `max_model_len` (vLLM) and `token_strs` when asked.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TokenizeRequest(_Request):
    model: str | None = None  # optional as in vLLM and llama.cpp: the loaded model when omitted
    prompt: str | None = None  # vLLM
    content: str | None = None  # llama.cpp
    messages: list[dict[str, Any]] | None = None  # vLLM's chat form
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    tools: list[dict[str, Any]] | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    add_special_tokens: bool | None = None  # vLLM
    add_special: bool | None = None  # llama.cpp
    return_token_strs: bool = False  # vLLM
    with_pieces: bool = False  # llama.cpp


class TokenPiece(BaseModel):
    """llama.cpp's `with_pieces` entry: the piece as text, or its bytes when not valid UTF-8."""

    id: int
    piece: str | list[int]


class TokenizeResponse(BaseModel):
    tokens: list[int] | list[TokenPiece]
    count: int
    max_model_len: int
    token_strs: list[str] | None = Field(default=None, exclude_if=lambda v: v is None)


class DetokenizeRequest(_Request):
    model: str | None = None
    tokens: list[int]


class DetokenizeResponse(BaseModel):
    prompt: str  # vLLM
    content: str  # llama.cpp
