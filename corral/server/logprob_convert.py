"""Engine logprobs -> the two OpenAI shapes (chat: per-token objects with bytes; completions:
parallel lists). Each engine entry is a dict token_id -> Logprob holding the chosen token and
the top ones (rank 1 = most likely)."""
from __future__ import annotations

from corral.core.outputs import Logprob
from corral.server import openai_protocol as oa


def _top(entry: dict[int, Logprob], top: int) -> list[Logprob]:
    return sorted((lp for lp in entry.values() if lp.rank <= top), key=lambda lp: lp.rank)[:top]


def _chosen(entry: dict[int, Logprob], token_id: int) -> Logprob:
    chosen = entry.get(token_id)
    if chosen is None:  # the engine always includes the sampled token; keep a safe shape if not
        return Logprob(token_id=token_id, logprob=float("-inf"), rank=0, decoded_token="")
    return chosen


def _bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def _top_dict(tops: list[Logprob]) -> dict[str, float]:
    """{text: logprob}; tokens that decode to the same text (e.g. partial UTF-8) keep the best."""
    result: dict[str, float] = {}
    for lp in tops:
        result.setdefault(lp.decoded_token, lp.logprob)
    return result


def chat_logprobs(entries: list[dict[int, Logprob]] | None, token_ids: list[int], top: int) -> oa.ChatLogprobs:
    """`{"content": [{token, logprob, bytes, top_logprobs: [...]}]}` for the tokens of one delta."""
    content = []
    for token_id, entry in zip(token_ids, entries or []):
        chosen = _chosen(entry, token_id)
        tops = [oa.TopLogprob(token=lp.decoded_token, logprob=lp.logprob, bytes=_bytes(lp.decoded_token))
                for lp in _top(entry, top)]
        content.append(oa.TokenLogprob(token=chosen.decoded_token, logprob=chosen.logprob,
                                       bytes=_bytes(chosen.decoded_token), top_logprobs=tops))
    return oa.ChatLogprobs(content=content)


def completion_logprobs(entries: list[dict[int, Logprob]] | None, token_ids: list[int], top: int,
                        text_offset: int = 0) -> oa.CompletionLogprobs:
    """`{tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}`; `text_offset`
    is where this delta's text starts within the completion."""
    result = oa.CompletionLogprobs()
    offset = text_offset
    for token_id, entry in zip(token_ids, entries or []):
        chosen = _chosen(entry, token_id)
        result.tokens.append(chosen.decoded_token)
        result.token_logprobs.append(chosen.logprob)
        result.top_logprobs.append(_top_dict(_top(entry, top)) if top else None)
        result.text_offset.append(offset)
        offset += len(chosen.decoded_token)
    return result
