"""`corral pull | list | show | rm | cp | create`: the local model store, used directly (no server)."""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from corral.errors import StoreError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("pull", help="download a model from the Hugging Face Hub")
    p.add_argument("name", help="hf.co/ORG/REPO[:QUANT] (GGUF) or ORG/REPO (safetensors)")
    p.set_defaults(func=pull_command)

    p = subparsers.add_parser("list", aliases=["ls"], help="list local models")
    p.set_defaults(func=list_command)

    p = subparsers.add_parser("show", help="show a model's details, template, parameters or license")
    p.add_argument("name")
    only = p.add_mutually_exclusive_group()
    for flag in ("modelfile", "template", "system", "parameters", "license"):
        only.add_argument(f"--{flag}", action="store_true", help=f"print only the {flag}")
    p.set_defaults(func=show_command)

    p = subparsers.add_parser("rm", help="remove models")
    p.add_argument("names", nargs="+", metavar="name")
    p.set_defaults(func=rm_command)

    p = subparsers.add_parser("cp", help="copy a model to a new name")
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--force", action="store_true", help="replace the destination if it exists")
    p.set_defaults(func=cp_command)

    p = subparsers.add_parser("create", help="create a model from a Modelfile")
    p.add_argument("name")
    p.add_argument("-f", "--file", default="Modelfile", help="path to the Modelfile (default: ./Modelfile)")
    p.set_defaults(func=create_command)


def pull_command(args: argparse.Namespace) -> int:
    from corral.store import pull

    bars = ProgressPrinter(sys.stderr)
    try:
        pull(args.name, bars)
    finally:
        bars.close()
    return 0


def list_command(args: argparse.Namespace) -> int:
    from corral.store import list_models

    rows = [["NAME", "ID", "SIZE", "MODIFIED"]]
    models = list_models()
    for m in models:
        shown_id = "DAMAGED" if m.damage else m.digest.partition(":")[2][:12]
        rows.append([m.name, shown_id, human_size(m.size) if not m.damage else "-", ago(m.modified_at)])
    rows.extend(bundled_rows({row[0] for row in rows}))
    print(table(rows))
    damaged = [m for m in models if m.damage]
    if damaged:
        print("\nDamaged models (remove each with `corral rm NAME`, then pull or create it again):")
        for m in damaged:
            print(f"  {m.name}: {m.damage}")
    return 0


def bundled_rows(listed: set[str]) -> list[list[str]]:
    """`corral list` rows for the models that come with the install (none shadowed by a store
    model of the same name): no ID, marked bundled (they cannot be removed), the default marked."""
    from corral.store.default_model import bundled_models

    rows = []
    for i, m in enumerate(bundled_models()):
        if m.name not in listed:
            rows.append([m.name, "bundled", human_size(m.size), "default, not removable" if i == 0 else "not removable"])
    return rows


def show_command(args: argparse.Namespace) -> int:
    from corral.store import show
    from corral.store.layout import StoreLayout
    from corral.store.params import format_value

    info = show(args.name)
    if args.modelfile:
        print(info.modelfile(StoreLayout.at()), end="")
    elif args.template:
        print(info.template or "")
    elif args.system:
        print(info.system or "")
    elif args.license:
        print(info.license or "")
    elif args.parameters:
        print(parameters_text(info.parameters, format_value))
    else:
        print(show_text(info, format_value))
    return 0


def rm_command(args: argparse.Namespace) -> int:
    from corral.store import remove

    for name in args.names:
        remove(name)
        unload_from_server(name)
        print(f"deleted '{name}'")
    return 0


def unload_from_server(name: str) -> None:
    """Ask a server running at CORRAL_HOST to unload `name` (as `corral stop` does), so it stops
    serving files the name no longer points at (removed, or replaced by create or cp --force) once
    their requests finish. Quiet when no server answers or it has no such model loaded; the
    store itself is already changed."""
    import httpx

    from corral import envs
    from corral.cli.server_commands import base_url
    from corral.store import parse_name

    headers = {"Authorization": f"Bearer {envs.api_key()}"} if envs.api_key() else {}
    body = {"model": str(parse_name(name)), "keep_alive": 0}
    try:
        httpx.post(base_url() + "/api/generate", json=body, headers=headers, timeout=httpx.Timeout(10.0, connect=0.5))
    except (httpx.HTTPError, httpx.InvalidURL, ValueError):
        pass


def cp_command(args: argparse.Namespace) -> int:
    from corral.store import copy
    from corral.store.catalog import ModelExistsError

    try:
        copy(args.source, args.destination, force=args.force)
    except ModelExistsError:
        raise ModelExistsError(f"model '{args.destination}' already exists; pass --force to replace it, "
                               "or copy to another name") from None
    if args.force:
        unload_from_server(args.destination)  # the name now points at other files
    print(f"copied '{args.source}' to '{args.destination}'")
    return 0


def create_command(args: argparse.Namespace) -> int:
    from corral.store import create

    path = Path(args.file).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise StoreError(f"cannot read Modelfile {path}: {e.strerror or e}; pass its path with -f") from None
    create(args.name, text, path.parent, on_progress=lambda e: print(e.status, file=sys.stderr))
    unload_from_server(args.name)  # a server holding the old model of that name lets it go
    return 0


def show_text(info, format_value) -> str:
    mi = info.model_info
    rows = [
        ("architecture", mi.get("architecture")),
        ("parameters", info.details.get("parameter_size")),
        ("context length", mi.get("context_length")),
        ("embedding length", mi.get("embedding_length")),
        ("quantization", mi.get("quantization") or info.details.get("quantization_level")),
    ]
    sections = ["  Model\n" + _indented(table([[k, str(v)] for k, v in rows if v is not None], gap=4))]
    if info.parameters:
        sections.append("  Parameters\n" + _indented(parameters_text(info.parameters, format_value)))
    if info.system:
        sections.append("  System\n" + _indented(info.system))
    if info.license:
        head = "\n".join(info.license.strip().splitlines()[:2])
        sections.append("  License\n" + _indented(head))
    return "\n".join(sections)


def parameters_text(params: dict, format_value) -> str:
    rows = [[key, format_value(item)] for key, value in params.items()
            for item in (value if isinstance(value, list) else [value])]
    return table(rows, gap=4) if rows else ""


def table(rows: list[list[str]], gap: int = 4) -> str:
    """Left-aligned columns separated by at least `gap` spaces (Ollama's tab-writer look)."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "".join(cell.ljust(widths[i] + gap) if i < len(row) - 1 else cell for i, cell in enumerate(row)).rstrip()
        for row in rows
    )


def _indented(text: str) -> str:
    return "\n".join("    " + line if line else line for line in text.splitlines()) + "\n"


def human_size(n: float) -> str:
    """Bytes in decimal units as Ollama prints them: 397 MB, 4.7 GB."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if n >= 100 or unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} TB"


def ago(when: datetime, now: datetime | None = None) -> str:
    seconds = ((now or datetime.now(timezone.utc)) - when).total_seconds()
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "Less than a minute ago" if seconds >= 1 else "Just now"


class ProgressPrinter:
    """One progress bar per file, redrawn in place on a terminal: percent, bar, size, speed, time left."""

    WIDTH = 25

    def __init__(self, stream):
        self.stream = stream
        self.tty = stream.isatty()
        self.current: str | None = None
        self.started = 0.0
        self.start_bytes = 0
        self.last_line = ""

    def __call__(self, event) -> None:
        if event.total is None or event.completed is None:
            self._finish_line()
            print(event.status, file=self.stream)
            return
        if event.status != self.current:
            self._finish_line()
            self.current, self.started, self.start_bytes = event.status, time.monotonic(), event.completed
        self.last_line = self._bar(event)
        if self.tty:
            self.stream.write("\r" + self.last_line + "\x1b[K")
            self.stream.flush()

    def _bar(self, event) -> str:
        total, done = max(event.total, 1), event.completed
        elapsed = max(time.monotonic() - self.started, 1e-6)
        speed = (done - self.start_bytes) / elapsed
        left = f"{(total - done) / speed:.0f}s" if speed > 0 and done < total else ""
        filled = int(self.WIDTH * done / total)
        bar = "█" * filled + " " * (self.WIDTH - filled)
        return (f"{self.current}: {100 * done // total:3d}% ▕{bar}▏ {human_size(done)}/{human_size(event.total)}"
                f"  {human_size(speed)}/s  {left}").rstrip()

    def _finish_line(self) -> None:
        if self.current is not None:
            self.stream.write(("\r" + self.last_line + "\x1b[K\n") if self.tty else self.last_line + "\n")
            self.current = None

    def close(self) -> None:
        self._finish_line()
        self.stream.flush()
