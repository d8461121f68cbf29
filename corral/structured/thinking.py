"""A constraint that holds only after the model has thought: free text up to `</think>`, then the
constrained answer (as vLLM applies a grammar only once its reasoning parser sees the end of the
reasoning).

The answer's grammar is kept whole and referenced from a small Lark grammar in front of it, so
any constraint (JSON schema, regex, choice, GBNF, a tool-call grammar) can follow a thought. The
thought itself is free: it ends at the first `</think>` (a lazy lexeme), and `max_tokens` is its
only bound. Up to two newlines may follow `</think>` before the answer, as Qwen3 and DeepSeek-R1
distills write them.
"""
from __future__ import annotations

import json
from typing import Any

OPEN, CLOSE = "<think>", "</think>"


def after_thinking(grammar: str, mode: str, tokenizer: Any) -> str:
    """`grammar` (llguidance grammar text) behind a thought: mode "open" (the reply starts inside
    the thought), "optional" (the reply may start with `<think>...</think>`) or "closing" (the
    reply starts with `</think>`: the rest of a thought that ran out of budget)."""
    answer = _grammars_of(grammar)
    name = answer[0].get("name") or "answer"
    answer[0] = {**answer[0], "name": name}
    opened, closed = _spell(OPEN, tokenizer), _spell(CLOSE, tokenizer)
    thought = {"open": f"thought[lazy]: THOUGHT {closed}", "optional": f"thought[lazy]: {opened} THOUGHT {closed}",
               "closing": f"thought: {closed}"}[mode]
    start = f"start: (thought NEWLINES?)? @{name}" if mode == "optional" else f"start: thought NEWLINES? @{name}"
    lark = f"{start}\n{thought}\nTHOUGHT: /(.|\\n)*/\nNEWLINES: /\\n{{1,2}}/\n"
    return json.dumps({"grammars": [{"name": "thinking_first", "lark_grammar": lark}, *answer]})


def _grammars_of(grammar: str) -> list[dict]:
    """The grammar list of llguidance grammar text (JSON with `grammars`, or Lark text)."""
    if grammar.lstrip().startswith("{"):
        try:
            parsed = json.loads(grammar)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("grammars"), list) and parsed["grammars"]:
            return [dict(g) for g in parsed["grammars"]]
    return [{"lark_grammar": grammar}]


def _spell(marker: str, tokenizer: Any) -> str:
    """`<[id]>` when `marker` is one special token (a grammar can only name it), else quoted."""
    ids = tokenizer.encode(marker, add_special_tokens=False)
    if len(ids) == 1 and tokenizer.is_special(ids[0]):
        return f"<[{ids[0]}]>"
    return json.dumps(marker)


class ThoughtBudget:
    """Counts a thought's tokens from the bytes of the accepted ones: `over()` is True once the
    thought has taken `budget` tokens without closing (the caller then switches the request to
    the "closing" grammar); done once the thought closes, or never opened ("optional" mode)."""

    def __init__(self, budget: int, opened: bool):
        self.left = budget
        self.text = b"" if not opened else OPEN.encode()
        self.opened = opened
        self.done = False

    def add(self, token_bytes: bytes) -> bool:
        """Count one accepted token; True when the budget has just run out."""
        if self.done:
            return False
        self.text = (self.text + token_bytes)[-64:] if self.opened else self.text + token_bytes
        if not self.opened:
            stripped = self.text.lstrip()
            if not OPEN.encode().startswith(stripped[:len(OPEN)]):
                self.done = True  # the reply went straight to the answer
                return False
            self.opened = len(stripped) >= len(OPEN)
        if CLOSE.encode() in self.text:
            self.done = True
            return False
        self.left -= 1
        if self.left <= 0:
            self.done = True
            return True
        return False
