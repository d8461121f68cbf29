"""`corral ps` and `corral stop MODEL`: clients of a running server's HTTP API (CORRAL_HOST)."""
from __future__ import annotations

import argparse
from datetime import datetime, timezone

from corral import envs
from corral.errors import CorralError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("ps", help="list the models the server has loaded")
    p.set_defaults(func=ps)
    p = subparsers.add_parser("stop", help="unload a model from the server now")
    p.add_argument("model")
    p.set_defaults(func=stop)


def base_url() -> str:
    value = envs.host()
    return value.rstrip("/") if "://" in value else f"http://{value}"


def _request(method: str, path: str, json: dict | None = None) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {envs.api_key()}"} if envs.api_key() else {}
    try:
        response = httpx.request(method, base_url() + path, json=json, headers=headers, timeout=60)
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        raise CorralError(f"cannot reach the server at {base_url()} ({e}); start it with `corral serve` "
                          "or set CORRAL_HOST to its address") from None
    if response.status_code >= 400:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise CorralError(str(message))
    return response.json()


def format_size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def format_until(expires_at: str, now: datetime | None = None) -> str:
    when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds > 100 * 365 * 86400:
        return "Forever"
    if seconds < 60:
        return "Less than a minute from now" if seconds > 0 else "Stopping..."
    minutes = int(seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''} from now"


def ps(args: argparse.Namespace) -> int:
    rows = [("NAME", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL")]
    for m in _request("GET", "/api/ps")["models"]:
        processor = "100% GPU" if m.get("size_vram") else "100% CPU"
        rows.append((m["name"], format_size(m["size"]), processor, str(m.get("context_length", "")),
                     format_until(m["expires_at"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("    ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def stop(args: argparse.Namespace) -> int:
    """Unload like Ollama does: an empty generate request with keep_alive 0."""
    _request("POST", "/api/generate", json={"model": args.model, "keep_alive": 0})
    return 0
