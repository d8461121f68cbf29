"""The web app's conversations, kept in SQLite under CORRAL_HOME (`app/conversations.sqlite3`).

A conversation has a title, per-conversation settings (system prompt, sampling) and an ordered
list of messages. Every change bumps its `version`; a change that names an older version is
refused with ConversationConflict (409), so two browser tabs writing to one conversation cannot
overwrite each other: the loser reloads and re-applies its messages on top. One connection,
guarded by a lock (calls are short; the server runs them on its event loop).
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from corral.errors import CorralError, ValidationError


class ConversationNotFound(CorralError):
    status = 404
    code = "conversation_not_found"


class ConversationConflict(CorralError):
    """The conversation changed since the client read it: reload it, then apply the change again."""

    status = 409
    code = "conversation_conflict"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, settings TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    conversation TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, meta TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (conversation, seq)
);
"""
ROLES = ("system", "user", "assistant")


class ConversationStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def create(self, title: str, settings: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        cid = uuid.uuid4().hex[:16]
        with self._lock:
            self._db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, 0)",
                             (cid, title or "New chat", json.dumps(settings), now, now))
        return self.get(cid)

    def list(self, query: str = "") -> list[dict[str, Any]]:
        """Conversations, most recently updated first; `query` matches titles and message text."""
        sql = "SELECT * FROM conversations"
        args: tuple = ()
        if query:
            like = f"%{query.replace('%', '').replace('_', '')}%"
            sql += (" WHERE title LIKE ? OR id IN (SELECT conversation FROM messages WHERE content LIKE ?)")
            args = (like, like)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY updated DESC", args).fetchall()
        return [_summary(r) for r in rows]

    def get(self, cid: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT * FROM conversations WHERE id = ?", (cid,)).fetchone()
            if row is None:
                raise ConversationNotFound(f"conversation {cid!r} not found: it may have been deleted; reload the list")
            msgs = self._db.execute("SELECT * FROM messages WHERE conversation = ? ORDER BY seq", (cid,)).fetchall()
        conv = _summary(row)
        conv["messages"] = [
            {"role": m["role"], "content": m["content"], "meta": json.loads(m["meta"]), "created": m["created"]}
            for m in msgs
        ]
        return conv

    def update(self, cid: str, version: int, title: str | None, settings: dict[str, Any] | None) -> dict[str, Any]:
        with self._lock, self._db:
            self._check_version(cid, version)
            if title is not None:
                self._db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, cid))
            if settings is not None:
                self._db.execute("UPDATE conversations SET settings = ? WHERE id = ?", (json.dumps(settings), cid))
            self._bump(cid)
        return self.get(cid)

    def write_messages(self, cid: str, version: int, start: int, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """Replace the messages from index `start` on (start = current count appends) with `messages`."""
        for m in messages:
            if m.get("role") not in ROLES:
                raise ValidationError("role", f"must be one of {', '.join(ROLES)}")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._check_version(cid, version)
                count = self._db.execute("SELECT COUNT(*) FROM messages WHERE conversation = ?", (cid,)).fetchone()[0]
                if not 0 <= start <= count:
                    raise ValidationError("start", f"must be between 0 and {count}")
                self._db.execute("DELETE FROM messages WHERE conversation = ? AND seq >= ?", (cid, start))
                now = time.time()
                for i, m in enumerate(messages):
                    self._db.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)",
                                     (cid, start + i, m["role"], m.get("content") or "",
                                      json.dumps(m.get("meta") or {}), now))
                self._bump(cid)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.get(cid)

    def delete(self, cid: str) -> None:
        with self._lock:
            cur = self._db.execute("DELETE FROM conversations WHERE id = ?", (cid,))
        if cur.rowcount == 0:
            raise ConversationNotFound(f"conversation {cid!r} not found")

    def _check_version(self, cid: str, version: int) -> None:
        row = self._db.execute("SELECT version FROM conversations WHERE id = ?", (cid,)).fetchone()
        if row is None:
            raise ConversationNotFound(f"conversation {cid!r} not found: it may have been deleted; reload the list")
        if row[0] != version:
            raise ConversationConflict(
                f"conversation changed elsewhere (version {row[0]}, you had {version}): reload it and try again"
            )

    def _bump(self, cid: str) -> None:
        self._db.execute("UPDATE conversations SET version = version + 1, updated = ? WHERE id = ?", (time.time(), cid))


def _summary(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "title": row["title"], "settings": json.loads(row["settings"]),
            "created": row["created"], "updated": row["updated"], "version": row["version"]}


def to_markdown(conv: dict[str, Any]) -> str:
    """A conversation as a Markdown document (title, system prompt, then each turn)."""
    lines = [f"# {conv['title']}", ""]
    system = (conv.get("settings") or {}).get("system")
    if system:
        lines += ["**System:**", "", system, ""]
    for m in conv["messages"]:
        lines += [f"## {m['role'].capitalize()}", "", m["content"], ""]
    return "\n".join(lines)
