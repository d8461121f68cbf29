"""Ollama-compatible generation routes: /api/generate and /api/chat (NDJSON streams)."""
from __future__ import annotations

from typing import AsyncIterator, Callable

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from corral.server import ollama_convert as conv
from corral.server import ollama_protocol as ol
from corral.server.error_responses import stream_error_body
from corral.server.generate_request import GenerateRequest
from corral.server.generation import Generation, start_generation
from corral.server.infill import fim_prompts
from corral.server.ollama_reply import ShapedChunks, chat_response, generate_response, whole_pieces
from corral.server.state import ServerState, get_state, require_api_key, unless_disconnected
from corral.server.streaming import NDJSON_MEDIA_TYPE, GenerationStreamResponse, json_response, ndjson_line

router = APIRouter(dependencies=[Depends(require_api_key)])

# (model, unsent text, stats) -> final chunk; (model, text) -> intermediate chunk
FinalChunk = Callable[[str, str, conv.FinalStats], BaseModel]
Chunk = Callable[[str, str], BaseModel]


def _stats(gen: Generation, finish_reason: str | None) -> conv.FinalStats:
    t = gen.timing
    return conv.FinalStats(
        done_reason=conv.done_reason(finish_reason), total_s=t.total_s, load_s=t.load_s,
        prompt_eval_count=len(gen.prompt_token_ids), prompt_eval_s=t.prompt_eval_s,
        eval_count=gen.num_generated, eval_s=t.eval_s,
    )


async def _load_or_unload(state: ServerState, req: GenerateRequest) -> str:
    """An empty request loads the model (or unloads it with keep_alive 0), as in Ollama."""
    if req.keep_alive == 0:
        state.manager.unload(req.model)
        return "unload"
    await state.manager.load(req.model, req.keep_alive, context_length=req.num_ctx)
    return "load"


async def _respond(request: Request, gen: Generation, stream: bool, chunk: Chunk, final: FinalChunk):
    model = gen.req.model
    if stream:
        return GenerationStreamResponse(_ndjson(gen, chunk, final), NDJSON_MEDIA_TYPE, on_close=gen.close)
    acc = await unless_disconnected(request, gen.collect())
    out = acc.completions.get(0)
    text, reason = (out.text, out.finish_reason) if out else ("", None)
    return json_response(final(model, text, _stats(gen, reason)))


async def _ndjson(gen: Generation, chunk: Chunk, final: FinalChunk) -> AsyncIterator[bytes]:
    model = gen.req.model
    try:
        async for delta in gen.deltas():
            for out in delta.outputs:
                if out.finish_reason is not None:
                    yield ndjson_line(final(model, out.text, _stats(gen, out.finish_reason)))
                elif out.text:
                    yield ndjson_line(chunk(model, out.text))
    except Exception as e:  # after the headers: report in the stream
        yield stream_error_body("/api", e) + b"\n"


async def _respond_shaped(request: Request, gen: Generation, stream: bool, make):
    """Replies with thinking or tool calls to take apart (`make(model, pieces, stats)` -> chunk)."""
    model = gen.req.model
    if stream:
        return GenerationStreamResponse(_ndjson_shaped(gen, make), NDJSON_MEDIA_TYPE, on_close=gen.close)
    acc = await unless_disconnected(request, gen.collect())
    out = acc.completions.get(0)
    text, reason = (out.text, out.finish_reason) if out else ("", None)
    return json_response(make(model, whole_pieces(gen.reply, text), _stats(gen, reason)))


async def _ndjson_shaped(gen: Generation, make) -> AsyncIterator[bytes]:
    shaped = ShapedChunks(gen.reply, gen.req.model, make)
    try:
        async for delta in gen.deltas():
            for out in delta.outputs:
                if out.finish_reason is not None:
                    chunks = shaped.final(out.text, _stats(gen, out.finish_reason))
                else:
                    chunks = shaped.feed(out.text)
                for chunk in chunks:
                    yield ndjson_line(chunk)
    except Exception as e:  # after the headers: report in the stream
        yield stream_error_body("/api", e) + b"\n"


@router.post("/api/generate")
async def generate(body: ol.GenerateRequest, request: Request):
    state = get_state(request)
    req = conv.generate_to_internal(body, state.manager.resolve(body.model).defaults)
    if not body.prompt and not body.context:
        reason = await _load_or_unload(state, req)
        return json_response(ol.GenerateResponse(model=body.model, created_at=conv.now_rfc3339(), done=True,
                                                  done_reason=reason))
    if body.suffix:  # fill in the middle: the prompt becomes the model's FIM tokens, used as is
        req.prompt, req.raw, req.history, req.system, req.context = \
            (await fim_prompts(state.manager, body.model, [body.prompt or ""], body.suffix))[0], True, [], None, None
    gen = await start_generation(state.manager, req, state.metrics)

    def final(model: str, text: str, stats: conv.FinalStats) -> ol.GenerateResponse:
        context = gen.prompt_token_ids + gen.output_token_ids.get(0, [])
        return conv.generate_final(model, text, stats, context)

    if gen.reply.thinks:
        def make(model, pieces, stats):
            context = gen.prompt_token_ids + gen.output_token_ids.get(0, []) if stats else None
            return generate_response(model, pieces, stats, context)

        return await _respond_shaped(request, gen, body.stream, make)
    return await _respond(request, gen, body.stream, conv.generate_chunk, final)


@router.post("/api/chat")
async def chat(body: ol.ChatRequest, request: Request):
    state = get_state(request)
    req = conv.chat_to_internal(body, state.manager.resolve(body.model).defaults)
    if not body.messages:
        reason = await _load_or_unload(state, req)
        return json_response(ol.ChatResponse(model=body.model, created_at=conv.now_rfc3339(), done=True,
                                             done_reason=reason, message=ol.ResponseMessage()))
    gen = await start_generation(state.manager, req, state.metrics)
    if gen.reply.shapes:
        return await _respond_shaped(request, gen, body.stream, chat_response)
    return await _respond(request, gen, body.stream, conv.chat_chunk, conv.chat_final)
