"""The web app's conversations: list/search, create, read, rename and set settings, write
messages (with a version check), delete, export as JSON or Markdown."""
from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from corral.server.app_protocol import ConversationPatch, MessageWrite, NewConversation
from corral.server.app_state import get_app_state
from corral.server.conversations import to_markdown
from corral.server.state import require_api_key

router = APIRouter(prefix="/app/api", dependencies=[Depends(require_api_key)])


def _store(request: Request):
    return get_app_state(request).conversations


@router.get("/conversations")
async def list_conversations(request: Request, q: str = ""):
    return {"conversations": _store(request).list(q.strip())}


@router.post("/conversations", status_code=201)
async def new_conversation(body: NewConversation, request: Request):
    return _store(request).create(body.title, body.settings.model_dump(exclude_none=True))


@router.get("/conversations/{cid}")
async def get_conversation(cid: str, request: Request):
    return _store(request).get(cid)


@router.patch("/conversations/{cid}")
async def patch_conversation(cid: str, body: ConversationPatch, request: Request):
    settings = body.settings.model_dump(exclude_none=True) if body.settings is not None else None
    return _store(request).update(cid, body.version, body.title, settings)


@router.post("/conversations/{cid}/messages")
async def write_messages(cid: str, body: MessageWrite, request: Request):
    store = _store(request)
    start = body.start if body.start is not None else len(store.get(cid)["messages"])
    return store.write_messages(cid, body.version, start, [m.model_dump() for m in body.messages])


@router.delete("/conversations/{cid}", status_code=204)
async def delete_conversation(cid: str, request: Request):
    _store(request).delete(cid)


@router.get("/conversations/{cid}/export")
async def export_conversation(cid: str, request: Request, format: str = "json"):
    conv = _store(request).get(cid)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", conv["title"]).strip("-") or "conversation"
    if format == "md":
        headers = {"Content-Disposition": f'attachment; filename="{stem}.md"'}
        return PlainTextResponse(to_markdown(conv), media_type="text/markdown", headers=headers)
    headers = {"Content-Disposition": f'attachment; filename="{stem}.json"'}
    return JSONResponse(conv, headers=headers)
