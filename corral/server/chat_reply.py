"""A chat reply's parts, whatever the API: thinking, answer text and tool calls, streamed or whole.

`ReplyPlan` is made once per request from the model's template and the request's tools;
`ReplyShaper` turns one choice's text deltas into pieces, which the OpenAI and Ollama layers
write in their own chunk shapes. A reply with calls that stopped on its own ends with
finish_reason "tool_calls" (OpenAI's name; Ollama keeps "stop").
"""
from __future__ import annotations

from dataclasses import dataclass, field

from corral.server.reasoning import ReasoningSplitter
from corral.server.tool_calls import ToolPlan, new_call_id
from corral.server.tool_formats import ParsedCall
from corral.server.tool_stream import ToolCallStream


@dataclass(frozen=True)
class ReplyPlan:
    tools: ToolPlan | None = None
    thinks: bool = False  # split <think>...</think> off as reasoning
    in_thought: bool = False  # the prompt left a <think> open
    thinking_off: bool = False  # the prompt closed a <think> block for the reply

    @property
    def shapes(self) -> bool:
        return self.thinks or (self.tools is not None and self.tools.parses)


@dataclass
class ReplyPiece:
    reasoning: str = ""
    content: str = ""
    call: ParsedCall | None = None
    call_id: str | None = None
    call_index: int = 0


@dataclass
class WholeReply:
    reasoning: str | None
    content: str | None
    calls: list[tuple[str, ParsedCall]] = field(default_factory=list)


class ReplyShaper:
    def __init__(self, plan: ReplyPlan):
        self.plan = plan
        self._splitter = ReasoningSplitter(plan.in_thought) if plan.thinks else None
        self._tools = ToolCallStream(plan.tools) if plan.tools is not None and plan.tools.parses else None
        self.num_calls = 0

    def feed(self, text: str) -> list[ReplyPiece]:
        reasoning, content = self._splitter.feed(text) if self._splitter else ("", text)
        return self._pieces(reasoning, content, final=False)

    def finish(self) -> list[ReplyPiece]:
        reasoning, content = self._splitter.finish() if self._splitter else ("", "")
        return self._pieces(reasoning, content, final=True)

    def finish_reason(self, reason: str | None) -> str | None:
        return "tool_calls" if reason == "stop" and self.num_calls else reason

    def _pieces(self, reasoning: str, content: str, final: bool) -> list[ReplyPiece]:
        out = [ReplyPiece(reasoning=reasoning)] if reasoning else []
        if self._tools is None:
            if content:
                out.append(ReplyPiece(content=content))
            return out
        stream = self._tools.feed(content) if content else []
        if final:
            stream += self._tools.finish()
        for p in stream:
            if p.call is not None:
                out.append(ReplyPiece(call=p.call, call_id=new_call_id(), call_index=self.num_calls))
                self.num_calls += 1
            elif p.text:
                out.append(ReplyPiece(content=p.text))
        return out


def whole_reply(plan: ReplyPlan, text: str) -> tuple[WholeReply, ReplyShaper]:
    """The parts of a finished reply (the shaper tells the finish_reason)."""
    shaper = ReplyShaper(plan)
    pieces = shaper.feed(text) + shaper.finish()
    reasoning = "".join(p.reasoning for p in pieces)
    content = "".join(p.content for p in pieces)
    calls = [(p.call_id, p.call) for p in pieces if p.call is not None]
    if calls:
        content = content.strip()
    return WholeReply(reasoning or None, content or (None if calls else content), calls), shaper
