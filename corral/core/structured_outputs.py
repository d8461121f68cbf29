"""What a request's output must match, in the shape vLLM's `StructuredOutputsParams` has.

Plain data: the grammar library compiles it in `corral.structured`, when the engine takes the
request. Exactly one constraint is set. `param` names the request field the constraint came from
(`response_format`, `guided_json`, `format`, `tool_choice`, ...), so an error names that field.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corral.errors import ValidationError

KINDS = ("json", "json_object", "regex", "choice", "grammar", "lark")
THINKING_MODES = (None, "open", "optional", "closing")


@dataclass(frozen=True)
class StructuredOutputsParams:
    """One constraint on the generated text.

    - `json`: a JSON schema (a dict, or its JSON text); the output is one JSON value matching it.
    - `json_object`: True for any JSON object (OpenAI's `{"type": "json_object"}`).
    - `regex`: the whole output matches this regular expression (Rust `regex` syntax).
    - `choice`: the output is exactly one of these strings.
    - `grammar`: a llama.cpp GBNF grammar (rule `root`) or a Lark grammar (rule `start`).
    - `lark`: a grammar in llguidance's Lark dialect, used as is (tool calls build these).

    `thinking` lets a reasoning model think first, as vLLM's reasoning parsers do: "open" when the
    prompt left a `<think>` block open (the output is free text up to the first `</think>`, then
    matches the constraint); "optional" when the output may open with a `<think>...</think>`
    block before it; "closing" when the output must close the thought at once (`</think>`, then
    the constraint: a thought out of budget); None (the default) when the constraint holds from the first token.
    `thinking_budget` (with `thinking`) bounds the thought in tokens: once it has taken that many
    tokens without closing, `</think>` is the only way on.
    """

    json: dict[str, Any] | str | bool | None = None
    json_object: bool | None = None
    regex: str | None = None
    choice: tuple[str, ...] | list[str] | None = None
    grammar: str | None = None
    lark: str | None = None
    param: str = "structured_outputs"
    thinking: str | None = None
    thinking_budget: int | None = None

    def __post_init__(self) -> None:
        if self.thinking not in THINKING_MODES:
            raise ValidationError(self.param, f"thinking must be one of {', '.join(map(str, THINKING_MODES))}")
        if self.thinking_budget is not None and (
                isinstance(self.thinking_budget, bool) or not isinstance(self.thinking_budget, int)
                or self.thinking_budget < 1 or self.thinking is None):
            raise ValidationError(self.param, "thinking_budget must be a positive number of tokens, with thinking set")
        given = [k for k in KINDS if getattr(self, k) not in (None, False)]
        if len(given) != 1:
            raise ValidationError(self.param, "set exactly one of json, json_object, regex, choice, grammar"
                                  + (f" (got {', '.join(given)})" if given else ""))
        if self.choice is not None:
            if not isinstance(self.choice, (list, tuple)) or not self.choice or not all(
                    isinstance(c, str) for c in self.choice):
                raise ValidationError(self.param, "choice must be a non-empty list of strings")
            object.__setattr__(self, "choice", tuple(self.choice))
        for name in ("regex", "grammar", "lark"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValidationError(self.param, f"{name} must be a non-empty string")
        if self.json is not None and not isinstance(self.json, (dict, str, bool)):
            raise ValidationError(self.param, "json must be a JSON schema object (or its JSON text)")

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) not in (None, False))
