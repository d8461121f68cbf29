"""The store tests' loopback Hub, plus what the web app needs: `/api/models?search=` (the Hub's
search endpoint, answered from the repos it holds) and a throttle on file downloads, so a
browser can watch a download's progress."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))
from store_fake_hub import FakeHub  # noqa: E402

CHUNK = 64 << 10  # bytes written between pauses


class AppFakeHub(FakeHub):
    def __init__(self, seconds_per_chunk: float = 0.0):
        super().__init__()
        self.seconds_per_chunk = seconds_per_chunk
        base = self._server.RequestHandlerClass
        hub = self

        class Handler(base):
            def _serve(self, head: bool):
                parts = urlsplit(self.path)
                if parts.path == "/api/models":
                    hub.requests.append((self.command, self.path, None))
                    query = (parse_qs(parts.query).get("search") or [""])[0].lower()
                    found = [{"id": r, "modelId": r, "downloads": 10, "likes": 1,
                              "tags": ["gguf"] if any(p.endswith(".gguf") for p in repo.files) else []}
                             for r, repo in hub.repos.items() if query in r.lower()]
                    return self._send(200, json.dumps(found).encode(), {"Content-Type": "application/json"})
                return super()._serve(head)

            def _send(self, status: int, body: bytes, headers: dict, length: int | None = None):
                if hub.seconds_per_chunk <= 0 or len(body) <= CHUNK:
                    return super()._send(status, body, headers, length)
                super()._send(status, b"", headers, len(body) if length is None else length)
                for start in range(0, len(body), CHUNK):
                    self.wfile.write(body[start:start + CHUNK])
                    self.wfile.flush()
                    time.sleep(hub.seconds_per_chunk)

        self._server.RequestHandlerClass = Handler
