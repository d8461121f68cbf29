"""Thinking apart from the answer, for models that think in `<think>...</think>` (Qwen3,
DeepSeek-R1 distills): `reasoning_content` in OpenAI replies, `thinking` in Ollama's.

A reply is in its thinking from the start when the prompt left a `<think>` open (templates that
start the block themselves), or once it opens with `<think>`; the first `</think>` ends the
thinking, and what follows (leading blank lines dropped) is the answer. A block never closed is
all thinking, as vLLM reports it.
"""
from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"


def template_thinks(template: str | None) -> bool:
    return bool(template) and OPEN in template and CLOSE in template


def prompt_leaves_thinking_open(prompt_text: str) -> bool:
    return prompt_text.rfind(OPEN) > prompt_text.rfind(CLOSE)


def prompt_closes_thinking(prompt_text: str) -> bool:
    """The prompt's end holds a `<think>...</think>` block already closed (as Qwen3's template
    writes it when `enable_thinking` is false): the reply is the answer only."""
    return prompt_text.rfind(CLOSE) > prompt_text.rfind(OPEN) >= 0


class ReasoningSplitter:
    """feed(text) -> (reasoning, content) deltas; finish() -> what was held back."""

    def __init__(self, in_thought: bool = False):
        self._state = "thinking" if in_thought else "start"
        self._held = ""

    def feed(self, text: str) -> tuple[str, str]:
        self._held += text
        reasoning, content = "", ""
        while self._held:
            if self._state == "start":
                stripped = self._held.lstrip()
                if not stripped or (OPEN.startswith(stripped) and len(stripped) < len(OPEN)):
                    return reasoning, content  # may still become <think>
                if stripped.startswith(OPEN):
                    self._held = stripped[len(OPEN):]
                    self._state = "thinking"
                else:
                    self._state = "answer"
            elif self._state == "thinking":
                at = self._held.find(CLOSE)
                if at < 0:
                    keep = _partial_suffix(self._held, CLOSE)
                    reasoning += self._held[:len(self._held) - keep]
                    self._held = self._held[len(self._held) - keep:]
                    return reasoning, content
                reasoning += self._held[:at]
                self._held = self._held[at + len(CLOSE):]
                self._state = "after"
            elif self._state == "after":
                stripped = self._held.lstrip("\n")
                if not stripped:
                    self._held = ""
                    return reasoning, content
                self._held = stripped
                self._state = "answer"
            else:
                content += self._held
                self._held = ""
        return reasoning, content

    def finish(self) -> tuple[str, str]:
        held, self._held = self._held, ""
        if self._state == "thinking":
            return held, ""
        if self._state == "after":
            return "", held.lstrip("\n")
        return "", held

    def split(self, text: str) -> tuple[str, str]:
        """The whole reply at once: (reasoning, content)."""
        r1, c1 = self.feed(text)
        r2, c2 = self.finish()
        return r1 + r2, c1 + c2


def _partial_suffix(text: str, marker: str) -> int:
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0
