"""Ollama's store routes: /api/pull, /api/delete, /api/copy, /api/create (and /api/push, refused).

Pull and create run in a worker thread (`StoreJob`) and stream NDJSON progress objects as Ollama
does. The response waits for the operation to get past its first step ("pulling manifest",
"parsing modelfile"), so a bad name, an unknown repo or quantization, an unreachable Hub or a
bad Modelfile is an HTTP error with an `{"error": ...}` body; a failure after that is a last
`{"error": ...}` line in the stream. A client that goes away stops a pull at its next progress
report and the store rolls it back.
"""
from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Callable

from fastapi import APIRouter, Depends, Request

from corral import store
from corral.errors import ModelNotFoundError, StoreError, ValidationError
from corral.server import create_request
from corral.server import ollama_protocol as ol
from corral.server.error_responses import NotImplementedByServer, stream_error_body
from corral.server.state import ClientGone, ServerState, get_state, require_api_key, unless_disconnected
from corral.server.store_job import StoreJob
from corral.server.streaming import NDJSON_MEDIA_TYPE, GenerationStreamResponse, json_response, ndjson_line
from corral.store.catalog import ModelExistsError
from corral.store.progress import ProgressEvent

router = APIRouter(dependencies=[Depends(require_api_key)])
_PREAMBLE = frozenset({"pulling manifest", "parsing modelfile"})


def _progress(event: ProgressEvent) -> ol.ProgressResponse:
    return ol.ProgressResponse(status=event.status, digest=event.digest, total=event.total, completed=event.completed)


async def _run_job(request: Request, job: StoreJob, stream: bool, after: Callable[[], None] = lambda: None):
    """The job's progress as an NDJSON stream, or (not streaming) its final status object.
    `after` runs once the job has succeeded."""
    if not stream:
        try:
            await unless_disconnected(request, job.result())
        except ClientGone:
            await job.close()
            raise
        after()
        return json_response(ol.StatusResponse(status="success"))
    try:
        head = await job.head(_PREAMBLE)
    except BaseException:
        await job.close()
        raise
    return GenerationStreamResponse(_ndjson(head, job, after), NDJSON_MEDIA_TYPE, on_close=job.close)


async def _ndjson(head: list[ProgressEvent], job: StoreJob, after: Callable[[], None]) -> AsyncIterator[bytes]:
    for event in head:
        yield ndjson_line(_progress(event))
    try:
        async for event in job.events():
            yield ndjson_line(_progress(event))
    except Exception as e:  # after the headers: report in the stream
        yield stream_error_body("/api", e) + b"\n"
    else:
        after()


def _home(request: Request) -> Path | None:
    return get_state(request).store_home


def _required(value: str | None, field: str) -> str:
    if not value:
        raise ValidationError(field, "is required")
    return value


@router.post("/api/pull")
async def pull(body: ol.PullRequest, request: Request):
    name = _required(body.model or body.name, "model")
    home = _home(request)
    store.parse_name(name)  # a bad name is a 400 before any work starts
    job = StoreJob(lambda report: store.pull(name, report, home=home))
    return await _run_job(request, job, body.stream)


@router.post("/api/create")
async def create(body: ol.CreateRequest, request: Request):
    name = create_request.target_name(body)
    store.parse_name(name)
    text = create_request.modelfile_text(body)
    _check_path_allowed(get_state(request), store.parse_modelfile(text).from_)
    home = _home(request)
    # No base folder: a relative FROM is refused, never resolved against the server's "/" or cwd.
    job = StoreJob(lambda report: store.create(name, text, None, home=home, on_progress=report))
    state = get_state(request)
    return await _run_job(request, job, body.stream, after=lambda: _forget_loaded(state, name))


@router.delete("/api/delete")
async def delete(body: ol.DeleteRequest, request: Request):
    name = _required(body.model or body.name, "model")
    state = get_state(request)
    _check_exists(name, state.store_home)
    _forget_loaded(state, name)
    store.remove(name, home=state.store_home)
    return json_response(ol.StatusResponse(status="success"))


@router.post("/api/copy")
async def copy(body: ol.CopyRequest, request: Request):
    state = get_state(request)
    store.parse_name(body.destination)
    _check_exists(body.source, state.store_home)
    try:
        store.copy(body.source, body.destination, home=state.store_home)
    except ModelExistsError:
        raise ModelExistsError(f"model '{body.destination}' already exists; delete it first (DELETE /api/delete) "
                               "or copy to another name") from None
    _forget_loaded(state, body.destination)
    return json_response(ol.StatusResponse(status="success"))


@router.post("/api/push")
async def push():
    raise NotImplementedByServer("/api/push is not supported: corral pulls from the Hugging Face Hub and "
                                 "does not publish models")


def _check_path_allowed(state: ServerState, from_: str) -> None:
    """A server that does not load models by path (beyond loopback, no --allow-paths) does not
    import them by path either."""
    check = getattr(state.manager.source, "check_path_allowed", None)
    if check is not None:
        check(from_)


def _check_exists(name: str, home: Path | None) -> None:
    """ModelNotFoundError (404) in Ollama's words unless `name` is a model in the store."""
    canonical = str(store.parse_name(name))
    if not any(entry.name == canonical for entry in store.list_models(home=home)):
        raise ModelNotFoundError(f"model '{name}' not found")


def _forget_loaded(state: ServerState, name: str) -> None:
    """Unload `name` if loaded (at once if idle, else when its requests finish) and route new
    requests to the store's current files: a loaded model would otherwise keep serving the files
    or settings the name had before."""
    try:
        canonical = str(store.parse_name(name))
    except StoreError:
        canonical = None
    for candidate in (name, canonical):
        if candidate and state.manager.forget(candidate):
            return
