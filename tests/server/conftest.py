"""Real servers for the server tests: uvicorn on a free loopback port, the real engine, tiny models.

`server` preloads a tiny Llama 3.1 (HF folder) and is shared by the session; `keyed_server` has an
API key and loads a tiny Qwen2 (Q8_0 GGUF) on first request. The store is empty, in a temporary folder.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from server_harness import API_KEY, ENGINE_KWARGS, RunningServer, serve_in_thread


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
