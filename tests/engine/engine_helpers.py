"""Comparison helpers shared by the engine tests."""
from __future__ import annotations

import torch


def rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |a - e| / max |e|: the error relative to the logits' scale."""
    return float((actual.double() - expected.double()).abs().max() / expected.double().abs().max())


def hf_greedy(model, prompt_ids: list[int], n: int) -> list[int]:
    """Greedy continuation by a transformers model, one full forward per token (no cache tricks)."""
    ids = list(prompt_ids)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt_ids):]
