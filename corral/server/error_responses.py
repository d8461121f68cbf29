"""Map exceptions to 4xx/5xx responses: OpenAI-style bodies under /v1, Ollama-style elsewhere.

CorralError carries its status; FastAPI's request validation (malformed JSON, wrong types,
missing fields) becomes 400; Starlette's own HTTP errors (404 for an unknown route, 405 for a
wrong method) keep their status; anything else is a 500 that names the bug without stopping the
server. Every one of them has the body of the API the path belongs to, never FastAPI's `detail`.
"""
from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from corral.engine.step_isolation import RequestFailedError
from corral.errors import ContextLengthError, CorralError
from corral.server import ollama_protocol as ol
from corral.server import openai_protocol as oa

log = logging.getLogger("corral.server")


class AuthenticationError(CorralError):
    status = 401
    code = "invalid_api_key"


class NotImplementedByServer(CorralError):
    status = 501
    code = "not_implemented"


def is_openai_path(path: str) -> bool:
    return path.startswith("/v1/") or path == "/v1"


def openai_error(message: str, status: int, param: str | None = None, code: str | None = None) -> oa.ErrorResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 401:
        kind = "authentication_error"
    return oa.ErrorResponse(error=oa.ErrorInfo(message=message, type=kind, param=param, code=code))


def error_response(path: str, message: str, status: int, param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = openai_error(message, status, param, code) if is_openai_path(path) else ol.ErrorResponse(error=message)
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers or None)


def stream_error_body(path: str, e: Exception) -> bytes:
    """The JSON error body for an error after a stream began (headers already sent)."""
    if isinstance(e, CorralError):
        code = "context_length_exceeded" if isinstance(e, ContextLengthError) else e.code
        response = error_response(path, e.message, e.status, getattr(e, "param", None), code)
    elif isinstance(e, RequestFailedError):  # the engine logged it with its context
        response = error_response(path, str(e), 500, None, "generation_failed")
    else:
        log.error("generation failed mid-stream on %s", path, exc_info=e)
        response = error_response(path, f"generation failed: {type(e).__name__}: {e}", 500)
    return bytes(response.body)


def _validation_message(e: RequestValidationError) -> tuple[str, str | None]:
    errors = e.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return "the request body is not valid JSON", None
    parts, first = [], None
    for err in errors[:5]:
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        name = ".".join(loc) or "body"
        first = first or name
        parts.append(f"{name}: {str(err.get('msg', 'invalid'))[:300]}")
    return "invalid request: " + "; ".join(parts), first


_HTTP_MESSAGES = {404: "no such route: {method} {path}", 405: "method {method} is not allowed on {path}"}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def _phrase(status: int) -> str | None:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CorralError)
    async def _corral(request: Request, e: CorralError):
        code = "context_length_exceeded" if isinstance(e, ContextLengthError) else e.code
        return error_response(request.url.path, e.message, e.status, getattr(e, "param", None), code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        message, param = _validation_message(e)
        return error_response(request.url.path, message, 400, param, "invalid_request_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        template = _HTTP_MESSAGES.get(e.status_code)
        path = request.url.path
        default = e.detail == _phrase(e.status_code)  # Starlette's own message, not a route's
        message = template.format(method=request.method, path=path) if template and default else str(e.detail)
        return error_response(path, message, e.status_code, None, _HTTP_CODES.get(e.status_code),
                              headers=getattr(e, "headers", None))

    @app.exception_handler(RequestFailedError)
    async def _failed(request: Request, e: RequestFailedError):  # the engine logged it with its context
        return error_response(request.url.path, str(e), 500, None, "generation_failed")

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception):
        log.exception("internal error on %s", request.url.path)
        return error_response(request.url.path, f"internal server error: {type(e).__name__}: {e}", 500)
