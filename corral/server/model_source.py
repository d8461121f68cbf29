"""Where the server finds models by name: the local store, or a filesystem path.

`ModelSource` is the seam between the server and the store: `resolve` maps a request's model
name to files and Modelfile defaults, `list` enumerates what `/api/tags` shows.
`PathModelSource` accepts only a .gguf file or a Hugging Face folder; `default_source()` is the
store's (`corral.server.store_source`).
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from corral.errors import CorralError, ModelNotFoundError
from corral.server.generate_request import ModelDefaults

_WEIGHT_SUFFIXES = (".gguf", ".safetensors", ".bin")


@dataclass(frozen=True)
class ResolvedModel:
    """A model the server can load. `key` identifies it (canonical store name or absolute path);
    `name` is what requests use and responses report; `size_bytes` is its weights on disk."""

    name: str
    key: str
    path: Path
    kind: str  # "gguf" or "hf"
    size_bytes: int
    modified_at: float  # unix seconds
    defaults: ModelDefaults = field(default_factory=ModelDefaults)
    template: str | None = None  # the Modelfile template, shown by /api/show
    digest: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # Ollama-style, when the store knows them


class PathsNotAllowedError(CorralError):
    """A request named a model by filesystem path on a server that does not serve paths."""

    status = 403
    code = "permission_denied"

    def __init__(self, name: str):
        super().__init__(
            f"model '{name}' is a filesystem path, and this server does not load models by path "
            "(it listens beyond loopback); use a store model name, or start the server with --allow-paths"
        )


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach: localhost, 127.0.0.0/8, ::1."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ModelSource(Protocol):
    def resolve(self, name: str) -> ResolvedModel:
        """The model called `name`; raises ModelNotFoundError when there is none."""

    def list(self) -> list[ResolvedModel]:
        """Every model this source knows without being told a path."""


def weights_size(path: Path) -> int:
    """Bytes of weights in a .gguf file or a model folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)


def describe_path(name: str, path: Path) -> ResolvedModel:
    """A ResolvedModel for a .gguf file or an HF folder; raises ModelNotFoundError otherwise
    (StoreError for anything under /proc, /sys or /dev, whatever its name)."""
    from corral.store.model_files import check_outside_system_trees

    if os.path.lexists(path):
        check_outside_system_trees(path, name)
    if path.is_file() and path.suffix == ".gguf":
        kind = "gguf"
    elif path.is_dir() and (path / "config.json").is_file():
        kind = "hf"
    else:
        raise ModelNotFoundError(
            f"model '{name}' not found: pull it with `corral pull {name}`, or give a .gguf file "
            "or a Hugging Face model folder"
        )
    resolved = path.resolve()
    return ResolvedModel(
        name=name,
        key=str(resolved),
        path=resolved,
        kind=kind,
        size_bytes=weights_size(resolved),
        modified_at=resolved.stat().st_mtime,
    )


class PathModelSource:
    """Names are filesystem paths; lists nothing."""

    def resolve(self, name: str) -> ResolvedModel:
        if not name:
            raise ModelNotFoundError("no model given: name a model or a model file")
        return describe_path(name, Path(os.path.expanduser(name)))

    def list(self) -> list[ResolvedModel]:
        return []


class ChainedModelSource:
    """Tries each source in turn; lists the union (first source wins on equal keys)."""

    def __init__(self, *sources: ModelSource):
        self.sources = sources

    def resolve(self, name: str) -> ResolvedModel:
        error: ModelNotFoundError | None = None
        for source in self.sources:
            try:
                return source.resolve(name)
            except ModelNotFoundError as e:
                error = error or e
        raise error or ModelNotFoundError(f"model '{name}' not found")

    def list(self) -> list[ResolvedModel]:
        seen: dict[str, ResolvedModel] = {}
        for source in self.sources:
            for model in source.list():
                seen.setdefault(model.key, model)
        return list(seen.values())


def default_source(
    home: str | Path | None = None, *, allow_paths: bool = True, operator_paths: tuple[str, ...] = ()
) -> ModelSource:
    """The local store, which also accepts .gguf paths and model folders unless `allow_paths` is
    False (then only the paths in `operator_paths`, those named on `corral serve`)."""
    from corral.server.store_source import StoreModelSource

    return StoreModelSource(home, allow_paths=allow_paths, operator_paths=operator_paths)
