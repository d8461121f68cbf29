"""What the web app's routes keep per server app: the conversation store. Made on first use and
kept on `app.state.corral_app`, so `create_app` needs nothing new. (The token-rate history is the
server's own: ServerState.token_history.)"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Request

from corral import envs
from corral.server.conversations import ConversationStore
from corral.server.state import get_state


@dataclass
class AppState:
    conversations: ConversationStore


def get_app_state(request: Request) -> AppState:
    app_state = getattr(request.app.state, "corral_app", None)
    if app_state is None:
        home = get_state(request).store_home or envs.corral_home()
        app_state = AppState(ConversationStore(home / "app" / "conversations.sqlite3"))
        request.app.state.corral_app = app_state
    return app_state


def session_token(api_key: str) -> str:
    """The login cookie's value: derived from the key, so the key itself never sits in a cookie."""
    return hmac.new(api_key.encode(), b"corral web app session", hashlib.sha256).hexdigest()


def has_session(request: Request) -> bool:
    """True when no key is set, or the browser logged in (cookie) or sends the key."""
    key = get_state(request).api_key
    if key is None:
        return True
    cookie = request.cookies.get("corral_session", "")
    header = request.headers.get("authorization", "")
    return hmac.compare_digest(cookie, session_token(key)) or hmac.compare_digest(header, f"Bearer {key}")
