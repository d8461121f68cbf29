"""A loopback stand-in for the Hugging Face Hub's model endpoints, for store tests.

Serves `/api/models/{repo}[/revision/{rev}]` (siblings with sizes, git blob ids and LFS sha256)
and `/{repo}/resolve/{rev}/{file}` (GET and HEAD, Range requests, X-Repo-Commit / X-Linked-Etag /
X-Linked-Size headers) from in-memory files. Knobs for failures: `cut_once` (drop the connection
halfway through the first GET of a file), `advertise` (claim another file's content in metadata,
so the download's hash cannot match), `tamper` (send chosen sibling fields, as a hostile mirror
could). Every request is logged in `requests`.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".gguf", ".safetensors")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    commit: str = COMMIT
    advertise: dict[str, bytes] = field(default_factory=dict)  # path -> bytes its metadata describes
    tamper: dict[str, dict] = field(default_factory=dict)  # path -> sibling fields sent instead (a hostile mirror)

    def described(self, path: str) -> bytes:
        return self.advertise.get(path, self.files[path])


class FakeHub:
    def __init__(self):
        self.repos: dict[str, FakeRepo] = {}
        self.cut_once: set[str] = set()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_repo(self, repo: str, files: dict[str, bytes]) -> FakeRepo:
        self.repos[repo] = FakeRepo(dict(files))
        return self.repos[repo]

    def downloads(self, filename: str) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[0] == "GET" and "/resolve/" in r[1] and r[1].endswith("/" + filename)]

    def start(self) -> "FakeHub":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def sibling(path: str, data: bytes) -> dict:
    entry = {"rfilename": path, "size": len(data), "blobId": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
    if path.endswith(LFS_SUFFIXES):
        entry["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
    return entry


def _handler_for(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            self._serve(head=False)

        def do_HEAD(self):
            self._serve(head=True)

        def _serve(self, head: bool):
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((self.command, path, self.headers.get("Range")))
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
            if m:
                return self._model_info(m[1], m[2])
            m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if m:
                return self._resolve(m[1], m[2], m[3], head)
            self._error(404, "EntryNotFound")

        def _model_info(self, repo_id: str, revision: str | None):
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(404, "RepoNotFound")
            if revision not in (None, "main", repo.commit):
                return self._error(404, "RevisionNotFound")
            body = {
                "id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False,
                "siblings": [{**sibling(p, repo.described(p)), **repo.tamper.get(p, {})} for p in repo.files],
            }
            self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

        def _resolve(self, repo_id: str, revision: str, file: str, head: bool):
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(404, "RepoNotFound")
            if revision not in ("main", repo.commit):
                return self._error(404, "RevisionNotFound")
            if file not in repo.files:
                return self._error(404, "EntryNotFound")
            data = repo.files[file]
            meta = sibling(file, repo.described(file))
            headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{meta["blobId"]}"', "Accept-Ranges": "bytes"}
            if "lfs" in meta:
                headers["X-Linked-Etag"] = f'"{meta["lfs"]["sha256"]}"'
                headers["X-Linked-Size"] = str(len(data))
            start = 0
            rng = self.headers.get("Range")
            if rng and (rm := re.fullmatch(r"bytes=(\d+)-", rng)):
                start = int(rm[1])
                if start >= len(data):
                    return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            status = 206 if start else 200
            key = f"{repo_id}/{file}"
            if not head and key in hub.cut_once:
                hub.cut_once.discard(key)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self._send(status, b"" if head else body, headers, length=len(body))

        def _error(self, status: int, code: str):
            self._send(status, json.dumps({"error": code}).encode(), {"X-Error-Code": code, "Content-Type": "application/json"})

        def _send(self, status: int, body: bytes, headers: dict, length: int | None = None):
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            if body:
                self.wfile.write(body)

    return Handler
