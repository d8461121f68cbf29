"""Request bodies before any route sees them: a size limit, and JSON whatever the content type.

`RequestBodyMiddleware` (pure ASGI) reads the body of a request to /api or /v1 up to the limit and
answers 413 in the API's error shape as soon as the body is known to be larger (from its
Content-Length, or once the bytes read pass the limit), so an oversized body is never buffered
whole, parsed or tokenized. A body sent without a JSON content type (`curl -d` sends
`application/x-www-form-urlencoded`; some clients send none or `text/plain`) is read as JSON, as
Ollama does: every route under /api and /v1 takes JSON.
"""
from __future__ import annotations

import re

from corral.errors import ValidationError
from corral.server.error_responses import error_response

DEFAULT_MAX_BODY_SIZE = 16 << 20  # bytes: room for a long context's prompt or token ids, with JSON overhead
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
_UNIT = {"b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 1000**2, "mib": 1 << 20,
         "g": 1 << 30, "gb": 1000**3, "gib": 1 << 30}


def parse_size(text: str, param: str = "max_body_size") -> int:
    """Bytes from "16MiB", "512k", "1048576" (plain numbers are bytes; k/m/g are binary units)."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValidationError(param, f"must be a size like 16MiB, 512KiB or a number of bytes, got {text!r}")
    size = int(float(match.group(1)) * _UNIT[(match.group(2) or "b").lower()])
    if size < 1024:
        raise ValidationError(param, f"must be at least 1KiB, got {text!r}")
    return size


def _is_json_route(path: str) -> bool:
    return path.startswith("/api/") or path.startswith("/v1/")


def _is_json(content_type: bytes) -> bool:
    kind = content_type.split(b";", 1)[0].strip().lower()
    return kind == b"application/json" or kind.endswith(b"+json")


class RequestBodyMiddleware:
    def __init__(self, app, max_body_size: int = DEFAULT_MAX_BODY_SIZE):
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS or not _is_json_route(scope["path"]):
            return await self.app(scope, receive, send)
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.strip().isdigit() and int(length) > self.max_body_size:
            return await self._too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_size:
                return await self._too_large(scope, receive, send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        del chunks
        if body and not _is_json(content_type):
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send):
        limit = self.max_body_size
        message = (f"the request body is larger than the server's limit of {limit} bytes ({limit / (1 << 20):g} MiB); "
                   "send less, or start the server with a larger --max-body-size")
        response = error_response(scope["path"], message, 413, None, "request_too_large")
        response.headers["connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)
