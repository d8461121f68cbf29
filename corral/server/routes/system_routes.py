"""Liveness, metrics and the root page."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response

from corral.server.metrics import CONTENT_TYPE
from corral.server.state import get_state, require_api_key

health_router = APIRouter()  # open: load balancers probe it without a key
router = APIRouter(dependencies=[Depends(require_api_key)])


@health_router.get("/health")
async def health():
    return PlainTextResponse("ok")


@router.get("/metrics")
async def metrics(request: Request):
    return Response(get_state(request).metrics.render(), media_type=CONTENT_TYPE)


@router.api_route("/", methods=["GET", "HEAD"])
async def root():
    return PlainTextResponse("corral is running")
