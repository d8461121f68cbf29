"""Build the FastAPI app: routes, error handlers, auth, metrics, and the model manager's lifetime.

`create_app` takes everything it uses as arguments (no globals), so two apps in one process are
independent. `engine_loader` loads the engine for a resolved model; the default is AsyncEngine.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI

from corral.server.error_responses import install_error_handlers
from corral.server.metrics import HttpMetricsMiddleware, ServerMetrics
from corral.server.model_load import ModelLoad
from corral.server.model_manager import DEFAULT_KEEP_ALIVE_S, EngineLoader, ModelManager
from corral.server.model_source import ModelSource, ResolvedModel, default_source
from corral.server.request_body import DEFAULT_MAX_BODY_SIZE, RequestBodyMiddleware
from corral.server.routes import app_model_routes, app_page_routes, app_routes
from corral.server.routes import ollama_model_routes, ollama_routes, openai_routes, store_routes, system_routes
from corral.server.routes import embedding_routes, infill_routes, rerank_routes, tokenize_routes
from corral.server.state import ServerState

log = logging.getLogger("corral.server")


def async_engine_loader(**engine_kwargs: Any) -> EngineLoader:
    """Loads `AsyncEngine.from_model(path, **engine_kwargs)` (imported late: torch is heavy), at the
    load's context length when it asks for one, reporting weight progress into the load; or an
    AsyncEmbedder for an embedding or reranking model."""

    def load(resolved: ResolvedModel, progress: ModelLoad):
        from corral.engine.async_engine import AsyncEngine
        from corral.engine.model_kind import GENERATE, model_kind

        if model_kind(resolved.path, resolved.key) != GENERATE:
            from corral.engine.async_embedder import AsyncEmbedder

            return AsyncEmbedder.from_model(resolved.path, resolved.key, engine_kwargs.get("num_threads"))
        kwargs = dict(engine_kwargs)
        if progress.context_length:
            kwargs["max_model_len"] = progress.context_length
        engine = AsyncEngine.from_model(resolved.path, on_load_progress=progress.report, **kwargs)
        log.info("loaded %s: %s", resolved.path, engine.placement)
        return engine

    return load


def create_app(
    models: list[str] | None = None,
    *,
    api_key: str | None = None,
    source: ModelSource | None = None,
    engine_loader: EngineLoader | None = None,
    memory_budget: int | None = None,
    default_keep_alive: float = DEFAULT_KEEP_ALIVE_S,
    engine_kwargs: dict[str, Any] | None = None,
    on_ready: Callable[[ServerState], None] | None = None,
    store_home: str | Path | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> FastAPI:
    """The server app. `models` load at start-up (kept loaded until unloaded explicitly); any
    other model loads on first request. `api_key` guards every route but /health.
    `store_home` is the store the store routes change; by default the source's (a
    StoreModelSource's `home`), else CORRAL_HOME. A request body over `max_body_size` bytes is
    refused with 413 before it is read whole."""
    manager = ModelManager(
        source or default_source(),
        engine_loader or async_engine_loader(**(engine_kwargs or {})),
        memory_budget=memory_budget,
        default_keep_alive=default_keep_alive,
    )
    metrics = ServerMetrics(lambda: [(m.name, m.engine.stats()) for m in manager.loaded()])
    home = store_home if store_home is not None else getattr(manager.source, "home", None)
    state = ServerState(manager=manager, metrics=metrics, api_key=api_key,
                        store_home=Path(home) if home is not None else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        for name in models or []:
            log.info("loading %s", name)
            await manager.load(name, pin=True)
        reaper = asyncio.create_task(manager.run_reaper())
        sampler = asyncio.create_task(state.token_history.run(
            lambda: [(m.engine, m.engine.stats().generation_tokens_total) for m in manager.loaded()]))
        if on_ready:
            on_ready(state)
        try:
            yield
        finally:
            reaper.cancel()
            sampler.cancel()
            await asyncio.gather(reaper, sampler, return_exceptions=True)
            manager.shutdown()

    app = FastAPI(title="corral", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.corral = state
    install_error_handlers(app)
    app.include_router(system_routes.health_router)
    app.include_router(app_page_routes.router)  # before system_routes: it serves `/` to browsers
    for module in (system_routes, openai_routes, ollama_routes, ollama_model_routes, store_routes):
        app.include_router(module.router)
    app.include_router(app_routes.router)
    app.include_router(app_model_routes.router)
    for module in (tokenize_routes, embedding_routes, rerank_routes, infill_routes):
        app.include_router(module.router)
    app.add_middleware(RequestBodyMiddleware, max_body_size=max_body_size)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)  # outermost: counts the 413s too
    return app
