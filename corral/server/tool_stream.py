"""Tool calls out of a streamed reply: text is passed on as it comes, except what may be (part
of) a call, which is held until the call is complete and then handed out whole.

Contract: the content pieces and calls of every `feed` plus `finish` are what `ToolPlan.parse`
gives for the whole text (content may come out with different whitespace at the call seams).
"""
from __future__ import annotations

from dataclasses import dataclass

from corral.server.tool_calls import ToolPlan
from corral.server.tool_formats import ParsedCall


@dataclass
class StreamPiece:
    """Content text, or one complete call."""

    text: str = ""
    call: ParsedCall | None = None


class ToolCallStream:
    def __init__(self, plan: ToolPlan):
        self.plan = plan
        self.fmt = plan.format
        self._held = ""  # text not handed out yet
        self._in_call = False  # `_held` starts with an opened call (or is a whole-reply JSON call)
        self._free = not plan.parses  # no call can come any more (llama3_json replies that began as text)
        self.num_calls = 0

    def feed(self, text: str) -> list[StreamPiece]:
        self._held += text
        if self._free:
            return self._flush_text()
        if self.fmt.name == "llama3_json":
            return self._feed_whole_reply()
        out: list[StreamPiece] = []
        while True:
            if not self._in_call:
                at = self._held.find(self.fmt.open)
                if at < 0:
                    keep = _partial_suffix(self._held, self.fmt.open)
                    ready, self._held = self._held[:len(self._held) - keep], self._held[len(self._held) - keep:]
                    if ready:
                        out.append(StreamPiece(ready))
                    return out
                if at:
                    out.append(StreamPiece(self._held[:at]))
                self._held = self._held[at:]
                self._in_call = True
            if not self.fmt.close:  # mistral: the call list runs to the end of the reply
                return out
            end = self._held.find(self.fmt.close)
            if end < 0:
                return out
            block, self._held = self._held[:end + len(self.fmt.close)], self._held[end + len(self.fmt.close):]
            self._in_call = False
            out.extend(self._pieces_of(block))

    def finish(self) -> list[StreamPiece]:
        """Everything still held: calls if it parses as calls, text otherwise."""
        held, self._held = self._held, ""
        if not held:
            return []
        if self._free or not self.plan.parses:
            return [StreamPiece(held)]
        return self._pieces_of(held)

    def _feed_whole_reply(self) -> list[StreamPiece]:
        start = self._held.lstrip()
        if not start:
            return []
        tag = "<|python_tag|>"
        if start[0] == "{" or start.startswith(tag) or tag.startswith(start):
            return []  # a JSON call is (or may be) coming: hold the reply to the end
        self._free = True
        return self._flush_text()

    def _flush_text(self) -> list[StreamPiece]:
        text, self._held = self._held, ""
        return [StreamPiece(text)] if text else []

    def _pieces_of(self, block: str) -> list[StreamPiece]:
        if self.num_calls and not self.plan.parallel:
            content, calls = block, []
        else:
            content, calls = self.plan.parse(block)
        pieces = [StreamPiece(content)] if content else []
        for call in calls:
            if self.num_calls and not self.plan.parallel:
                break
            self.num_calls += 1
            pieces.append(StreamPiece(call=call))
        return pieces


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of `text` that is a proper beginning of `marker`."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0
