"""Fold streamed engine deltas into whole completions (for non-streaming responses)."""
from __future__ import annotations

from dataclasses import dataclass, field

from corral.core.outputs import CompletionOutput, RequestOutput


@dataclass
class Accumulated:
    """Every completion of one request, built up delta by delta; `completions[i]` has index i."""

    prompt_token_ids: list[int] = field(default_factory=list)
    completions: dict[int, CompletionOutput] = field(default_factory=dict)

    def add(self, delta: RequestOutput) -> None:
        """Append one delta: text and token ids concatenate; finish and stop reasons are kept."""
        if delta.prompt_token_ids:
            self.prompt_token_ids = list(delta.prompt_token_ids)
        for out in delta.outputs:
            acc = self.completions.get(out.index)
            if acc is None:
                acc = self.completions[out.index] = CompletionOutput(index=out.index, text="", token_ids=[])
            acc.text += out.text
            acc.token_ids.extend(out.token_ids)
            if out.logprobs is not None:
                acc.logprobs = (acc.logprobs or []) + list(out.logprobs)
            if out.finish_reason is not None:
                acc.finish_reason = out.finish_reason
                acc.stop_reason = out.stop_reason

    def ordered(self) -> list[CompletionOutput]:
        return [self.completions[i] for i in sorted(self.completions)]

    @property
    def num_generated_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.completions.values())
