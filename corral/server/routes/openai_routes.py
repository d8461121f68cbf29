"""OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/models."""
from __future__ import annotations

import time
import uuid
from typing import AsyncIterator

from fastapi import APIRouter, Depends, Request

from corral.errors import ModelNotFoundError
from corral.server import openai_convert as conv
from corral.server import openai_protocol as oa
from corral.server.accumulate import Accumulated
from corral.server.chat_reply import ReplyPlan
from corral.server.error_responses import stream_error_body
from corral.server.generation import Generation
from corral.server.infill import completion_with_suffix
from corral.server.state import get_state, require_api_key, unless_disconnected
from corral.server.stream_merge import close_all, merged, start_all
from corral.server.streaming import SSE_DONE, SSE_MEDIA_TYPE, GenerationStreamResponse, json_response
from corral.server.streaming import sse_event, sse_raw

router = APIRouter(dependencies=[Depends(require_api_key)])


def _meta(prefix: str, model: str) -> conv.ResponseMeta:
    return conv.ResponseMeta(id=f"{prefix}-{uuid.uuid4().hex}", created=int(time.time()), model=model)


def _usage(gens: list[Generation]) -> oa.Usage:
    return conv.usage(sum(len(g.prompt_token_ids) for g in gens), sum(g.num_generated for g in gens))


def _timings(gens: list[Generation]) -> oa.Timings | None:
    """The server's own timing of a single reply (n > 1 runs several at once: none then)."""
    if len(gens) != 1:
        return None
    gen = gens[0]
    decode_s = gen.timing.eval_s
    per_second = (gen.num_generated - 1) / decode_s if gen.num_generated > 1 and decode_s > 0 else None
    return oa.Timings(prompt_n=len(gen.prompt_token_ids), prompt_ms=1000 * gen.timing.prompt_eval_s,
                      predicted_n=gen.num_generated, predicted_ms=1000 * decode_s, predicted_per_second=per_second)


def _error_event(e: Exception) -> bytes:
    return sse_raw(stream_error_body("/v1", e))


@router.post("/v1/chat/completions")
async def chat_completions(body: oa.ChatCompletionRequest, request: Request):
    state = get_state(request)
    req = conv.chat_to_generate(body, state.manager.resolve(body.model).defaults)
    meta = _meta("chatcmpl", body.model)
    gens = await start_all(state.manager, [req], state.metrics, meta.id)
    top = req.params.logprobs
    reply = gens[0].reply
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return GenerationStreamResponse(_chat_stream(gens, meta, body.n, top, include_usage, reply), SSE_MEDIA_TYPE,
                                        on_close=lambda: close_all(gens))
    acc: Accumulated = await unless_disconnected(request, gens[0].collect())
    return json_response(conv.chat_completion(meta, acc.ordered(), top, _usage(gens), reply))


async def _chat_stream(gens: list[Generation], meta: conv.ResponseMeta, n: int, top: int | None,
                       include_usage: bool, reply: ReplyPlan) -> AsyncIterator[bytes]:
    for chunk in conv.chat_role_chunks(meta, n):
        yield sse_event(chunk)
    shaped = conv.ShapedChatChunks(meta, reply, top) if reply.shapes else None
    try:
        async for _, delta in merged(gens):
            for chunk in shaped.chunks(delta) if shaped else conv.chat_chunks(meta, delta, top):
                yield sse_event(chunk)
    except Exception as e:  # after the headers: report in the stream
        yield _error_event(e)
    else:
        if include_usage:
            yield sse_event(conv.chat_usage_chunk(meta, _usage(gens), _timings(gens)))
    yield SSE_DONE


@router.post("/v1/completions")
async def completions(body: oa.CompletionRequest, request: Request):
    state = get_state(request)
    if body.suffix is not None:  # fill in the middle: the prompt becomes the model's FIM tokens
        body = await completion_with_suffix(state.manager, body)
    reqs = conv.completion_to_generate(body, state.manager.resolve(body.model).defaults)
    meta = _meta("cmpl", body.model)
    gens = await start_all(state.manager, reqs, state.metrics, meta.id)
    top = body.logprobs
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return GenerationStreamResponse(_completion_stream(gens, meta, body.n, top, include_usage), SSE_MEDIA_TYPE,
                                        on_close=lambda: close_all(gens))
    choices = []
    try:
        for p, gen in enumerate(gens):
            acc: Accumulated = await unless_disconnected(request, gen.collect())
            choices += [conv.completion_choice(p * body.n + c.index, c, top, 0) for c in acc.ordered()]
    finally:
        await close_all(gens)
    return json_response(conv.completion(meta, choices, _usage(gens)))


async def _completion_stream(gens: list[Generation], meta: conv.ResponseMeta, n: int, top: int | None,
                             include_usage: bool) -> AsyncIterator[bytes]:
    offsets: dict[int, int] = {}
    try:
        async for p, delta in merged(gens):
            for out in delta.outputs:
                index = p * n + out.index
                choice = conv.completion_choice(index, out, top, offsets.get(index, 0))
                offsets[index] = offsets.get(index, 0) + len(out.text)
                yield sse_event(conv.completion(meta, [choice], None))
    except Exception as e:  # after the headers: report in the stream
        yield _error_event(e)
    else:
        if include_usage:
            yield sse_event(conv.completion(meta, [], _usage(gens)))
    yield SSE_DONE


def _card(name: str, created: float) -> oa.ModelCard:
    return oa.ModelCard(id=name, created=int(created))


@router.get("/v1/models")
async def list_models(request: Request):
    manager = get_state(request).manager
    cards = {m.name: _card(m.name, m.resolved.modified_at) for m in manager.loaded()}
    for resolved in manager.source.list():
        cards.setdefault(resolved.name, _card(resolved.name, resolved.modified_at))
    return json_response(oa.ModelList(data=list(cards.values())))


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request):
    try:
        resolved = get_state(request).manager.resolve(model_id)
    except ModelNotFoundError:
        raise ModelNotFoundError(f"The model '{model_id}' does not exist") from None
    return json_response(_card(model_id, resolved.modified_at))
