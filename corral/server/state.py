"""What the routes of one app share, kept on `app.state.corral` (no module globals)."""
from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, TypeVar

from fastapi import Request

from corral.errors import CorralError
from corral.server.error_responses import AuthenticationError
from corral.server.metrics import ServerMetrics
from corral.server.model_manager import ModelManager
from corral.server.token_history import TokenHistory

T = TypeVar("T")
DISCONNECT_POLL_S = 0.25


class ClientGone(CorralError):
    """The client closed the connection before its response was ready (nginx's 499)."""

    status = 499
    code = "client_closed_request"


@dataclass
class ServerState:
    manager: ModelManager
    metrics: ServerMetrics
    api_key: str | None = None
    store_home: Path | None = None  # the store /api/pull, /api/create, ... change; None: CORRAL_HOME
    token_history: TokenHistory = field(default_factory=TokenHistory)  # sampled by a task of the app


def get_state(request: Request) -> ServerState:
    return request.app.state.corral


def require_api_key(request: Request) -> None:
    """Dependency on every route but /health: `Authorization: Bearer KEY` when a key is set."""
    key = get_state(request).api_key
    if key is None:
        return
    given = request.headers.get("authorization", "")
    if not secrets.compare_digest(given.encode(), f"Bearer {key}".encode()):
        raise AuthenticationError("missing or wrong API key: send the header 'Authorization: Bearer KEY'")


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client goes away first (a non-streaming request then
    stops generating instead of finishing for nobody)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise ClientGone("client disconnected")
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
