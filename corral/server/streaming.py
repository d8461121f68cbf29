"""Stream encoders (SSE for OpenAI, NDJSON for Ollama) and a response that always cleans up.

`GenerationStreamResponse` runs `on_close` however the response ends: finished, client gone
(Starlette cancels the body iterator on disconnect), or never started.
"""
from __future__ import annotations

from typing import Awaitable, Callable

import anyio
from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

SSE_DONE = b"data: [DONE]\n\n"
SSE_MEDIA_TYPE = "text/event-stream"
NDJSON_MEDIA_TYPE = "application/x-ndjson"


def sse_event(obj: BaseModel) -> bytes:
    return b"data: " + obj.model_dump_json().encode() + b"\n\n"


def sse_raw(body: bytes) -> bytes:
    return b"data: " + body + b"\n\n"


def json_response(obj: BaseModel) -> Response:
    """A whole JSON response from a protocol type (serialized once, exclusions honoured)."""
    return Response(obj.model_dump_json(), media_type="application/json")


def ndjson_line(obj: BaseModel) -> bytes:
    return obj.model_dump_json().encode() + b"\n"


class GenerationStreamResponse(StreamingResponse):
    def __init__(self, content, media_type: str, on_close: Callable[[], Awaitable[None]]):
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(content, media_type=media_type, headers=headers)
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.on_close()
