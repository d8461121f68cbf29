"""Helpers for the real-server tests: run uvicorn in a thread on a free port, wait for conditions."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

ENGINE_KWARGS = {"max_model_len": 256, "kv_cache_memory": 8 << 20, "max_num_seqs": 64}
API_KEY = "test-key"


@dataclass
class RunningServer:
    url: str
    app: object
    model: str

    @property
    def state(self):
        return self.app.state.corral

    def engine(self):
        loaded = self.state.manager.find_loaded(self.model)
        return loaded.engine if loaded else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_in_thread(app, timeout_s: float = 120.0):
    """Start uvicorn for `app` on a free port; returns (base url, stop function)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)

    def stop():
        server.should_exit = True
        thread.join(timeout=60)

    return f"http://127.0.0.1:{port}", stop


def wait_until(predicate, timeout_s: float = 20.0, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()
