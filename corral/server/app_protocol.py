"""Request types of the web app's own routes (/app/api/...); responses are plain JSON objects
built by corral.server.conversations and corral.server.routes.app_routes."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Settings(BaseModel):
    """A conversation's model and sampling settings; unknown keys are kept (newer app versions)."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    system: str = ""
    preset: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=5)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    context_length: int | None = Field(default=None, ge=16)


class NewConversation(_Request):
    title: str = Field(default="New chat", max_length=200)
    settings: Settings = Field(default_factory=Settings)


class ConversationPatch(_Request):
    version: int
    title: str | None = Field(default=None, max_length=200)
    settings: Settings | None = None


class Message(_Request):
    role: Literal["system", "user", "assistant"]
    content: str
    meta: dict[str, Any] = Field(default_factory=dict)  # model, tokens, tok/s, ttft_ms, error


class MessageWrite(_Request):
    """Replace messages from index `start` on (None: append) if the conversation is still at `version`."""

    version: int
    start: int | None = None
    messages: list[Message]


class Login(_Request):
    key: str
