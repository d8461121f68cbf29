"""The web app's page: `/` (HTML for browsers, Ollama's plain-text banner for everyone else),
its static files under /app/static/, and the login behind `--api-key`.

With an API key set, a browser without the login cookie gets only the login page; the app's own
files and every API call need the key (the page sends it as a Bearer header; the cookie only
unlocks the static files, which carry no data).
"""
from __future__ import annotations

import hmac
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response

from corral.server.app_protocol import Login
from corral.server.app_state import has_session, session_token
from corral.server.error_responses import AuthenticationError
from corral.server.state import get_state, require_api_key

router = APIRouter()
STATIC = Path(str(resources.files("corral.server") / "static"))
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml",
               ".txt": "text/plain", ".png": "image/png", ".ico": "image/x-icon"}
NO_STORE = {"Cache-Control": "no-cache"}


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


@router.api_route("/", methods=["GET", "HEAD"])
async def root(request: Request):
    if not wants_html(request):
        require_api_key(request)  # API clients: the banner, behind the key like every route but /health
        return PlainTextResponse("corral is running")
    page = "index.html" if has_session(request) else "login.html"
    return FileResponse(STATIC / page, media_type="text/html", headers=NO_STORE)


@router.get("/app/static/{name}")
async def static_file(name: str, request: Request):
    path = STATIC / name
    if name.startswith(".") or "/" in name or not path.is_file() or path.suffix not in MEDIA_TYPES:
        return Response(status_code=404)
    if not has_session(request):
        raise AuthenticationError("log in first: open / and enter the server's API key")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=NO_STORE)


@router.post("/app/login")
async def login(body: Login, request: Request):
    key = get_state(request).api_key
    if key is None:
        return Response(status_code=204)
    if not hmac.compare_digest(body.key.encode(), key.encode()):
        raise AuthenticationError("wrong API key: ask whoever runs this server for the key given to --api-key")
    response = Response(status_code=204)
    response.set_cookie("corral_session", session_token(key), httponly=True, samesite="strict")
    return response
