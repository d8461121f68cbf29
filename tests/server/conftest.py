"""Real servers for the server tests: uvicorn on a free loopback port, the real engine, tiny models.

`server` preloads a tiny Llama 3.1 (HF folder) and is shared by the session; `keyed_server` has an
API key and loads a tiny Qwen2 (Q8_0 GGUF) on first request. The store is empty, in a temporary folder.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


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


@pytest.fixture(scope="session")
def tiny_model_path(tiny_models) -> str:
    return str(tiny_models("llama31", "hf"))


@pytest.fixture(scope="session")
def tiny_gguf_path(tiny_models) -> str:
    return str(tiny_models("qwen2", "Q8_0"))


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corral-home")


def _start(model: str, empty_store: Path, preload: bool, api_key: str | None):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource

    app = create_app([model] if preload else [], api_key=api_key, source=StoreModelSource(empty_store),
                     engine_kwargs=ENGINE_KWARGS)
    url, stop = serve_in_thread(app)
    return RunningServer(url, app, model), stop


@pytest.fixture(scope="session")
def server(tiny_model_path, empty_store):
    running, stop = _start(tiny_model_path, empty_store, preload=True, api_key=None)
    yield running
    stop()


@pytest.fixture()
def keyed_server(tiny_gguf_path, empty_store):
    running, stop = _start(tiny_gguf_path, empty_store, preload=False, api_key=API_KEY)
    yield running
    stop()


@pytest.fixture(scope="session")
def reference_llm(tiny_model_path):
    """The offline API on the same model, for greedy outputs to compare against."""
    from corral import LLM

    return LLM(tiny_model_path, **ENGINE_KWARGS)


def wait_until(predicate, timeout_s: float = 20.0, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()
