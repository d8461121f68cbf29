"""Store routes (/api/pull, /api/delete, /api/copy, /api/create, /api/push).

Not served yet: each answers 501 with what to do instead. Wiring one to `corral.store` means
replacing its body; the paths, methods and auth are already in place.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends

from corral.server.error_responses import NotImplementedByServer
from corral.server.state import require_api_key

router = APIRouter(dependencies=[Depends(require_api_key)])

_CLI = {"pull": "corral pull NAME", "delete": "corral rm NAME", "copy": "corral cp SOURCE DEST",
        "create": "corral create NAME -f Modelfile", "push": None}


def _not_yet(action: str) -> NotImplementedByServer:
    cli = _CLI[action]
    hint = f"; use `{cli}` on the server's machine" if cli else ""
    return NotImplementedByServer(f"/api/{action} is not supported by this server yet{hint}")


@router.post("/api/pull")
async def pull():
    raise _not_yet("pull")


@router.delete("/api/delete")
async def delete():
    raise _not_yet("delete")


@router.post("/api/copy")
async def copy():
    raise _not_yet("copy")


@router.post("/api/create")
async def create():
    raise _not_yet("create")


@router.post("/api/push")
async def push():
    raise _not_yet("push")
