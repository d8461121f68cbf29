"""What the web app's routes keep per server app: the conversation store and a history of the
engines' generated-token totals (for tokens per second over the last minutes). Made on first use
and kept on `app.state.corral_app`, so `create_app` needs nothing new."""
from __future__ import annotations

import collections
import hashlib
import hmac
import time
from dataclasses import dataclass, field

from fastapi import Request

from corral import envs
from corral.server.conversations import ConversationStore
from corral.server.state import get_state

HISTORY_S = 300.0  # seconds of token-rate history kept


@dataclass
class AppState:
    conversations: ConversationStore
    token_history: collections.deque = field(default_factory=lambda: collections.deque(maxlen=600))

    def record_tokens(self, total: int) -> list[dict]:
        """Note the engines' generated-token total now; returns the per-interval rates
        ({t: unix seconds, tps}) over the last HISTORY_S."""
        now = time.time()
        self.token_history.append((now, total))
        while self.token_history and self.token_history[0][0] < now - HISTORY_S:
            self.token_history.popleft()
        points = list(self.token_history)
        rates = []
        for (t0, n0), (t1, n1) in zip(points, points[1:]):
            if t1 - t0 >= 0.5:
                rates.append({"t": t1, "tps": max(0, n1 - n0) / (t1 - t0)})
        return rates


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
