"""Ollama chunks for replies with thinking or tool calls: `message.thinking` / `thinking` for
the thought, `message.tool_calls` (`[{"function": {"name", "arguments": {...}}}]`, arguments as
an object as Ollama sends them) for calls, `content` / `response` for the rest."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from corral.server import ollama_protocol as ol
from corral.server.chat_reply import ReplyPiece, ReplyPlan, ReplyShaper, whole_reply
from corral.server.ollama_convert import FinalStats, now_rfc3339


def _calls(pieces: list[ReplyPiece]) -> list[dict[str, Any]] | None:
    calls = [{"function": {"name": p.call.name, "arguments": p.call.arguments}} for p in pieces if p.call]
    return calls or None


def chat_message(content: str, thinking: str | None, calls: list[dict[str, Any]] | None) -> ol.ResponseMessage:
    return ol.ResponseMessage(content=content, thinking=thinking or None, tool_calls=calls)


def chat_response(model: str, pieces: list[ReplyPiece], stats: FinalStats | None) -> ol.ChatResponse:
    message = chat_message("".join(p.content for p in pieces), "".join(p.reasoning for p in pieces), _calls(pieces))
    extra = stats.fields() if stats else {}
    return ol.ChatResponse(model=model, created_at=now_rfc3339(), message=message, **extra)


def generate_response(model: str, pieces: list[ReplyPiece], stats: FinalStats | None,
                      context: list[int] | None = None) -> ol.GenerateResponse:
    thinking = "".join(p.reasoning for p in pieces) or None
    extra = {**stats.fields(), "context": context} if stats else {}
    return ol.GenerateResponse(model=model, created_at=now_rfc3339(), response="".join(p.content for p in pieces),
                               thinking=thinking, **extra)


def whole_pieces(plan: ReplyPlan, text: str) -> list[ReplyPiece]:
    """A finished reply as one list of pieces (content with calls taken out, trimmed)."""
    whole, _ = whole_reply(plan, text)
    pieces = [ReplyPiece(reasoning=whole.reasoning or "", content=whole.content or "")]
    return pieces + [ReplyPiece(call=call, call_id=cid) for cid, call in whole.calls]


class ShapedChunks:
    """One choice's stream: `feed(text)` -> chunks to send now; `final(stats)` -> the last chunk."""

    def __init__(self, plan: ReplyPlan, model: str, make):
        self.shaper = ReplyShaper(plan)
        self.model, self.make = model, make

    def feed(self, text: str) -> list[BaseModel]:
        return [self.make(self.model, [p], None) for p in self.shaper.feed(text)] if text else []

    def final(self, text: str, stats: FinalStats) -> list[BaseModel]:
        pieces = (self.shaper.feed(text) if text else []) + self.shaper.finish()
        return [self.make(self.model, pieces, stats)]
