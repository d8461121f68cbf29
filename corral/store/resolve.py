"""Turn what a user typed (a store name or a path) into files a loader can open."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.errors import ModelNotFoundError, StoreError
from corral.store.folders import materialize
from corral.store.layout import StoreLayout
from corral.store.manifest import Manifest, read_manifest
from corral.store.model_files import check_outside_system_trees, check_regular_file
from corral.store.names import parse_name
from corral.store.sampling_defaults import file_options


@dataclass(frozen=True)
class ResolvedModel:
    """`path` is a GGUF file (kind "gguf") or a folder with config.json (kind "hf").

    params are the model's default options: the sampling its files recommend
    (`corral.store.sampling_defaults`) under the Modelfile's PARAMETERs. system/template/messages
    are the Modelfile settings stored with the name (empty for a plain path). Requests override
    all of them (`corral.core.model_options`).
    """

    path: Path
    kind: str  # "gguf" or "hf"
    params: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    template: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)


def resolve(name_or_path: str | Path, *, home: str | Path | None = None) -> ResolvedModel:
    """A `.gguf` file or an HF folder path is used as is; otherwise the name is looked up in the store.

    Raises ModelNotFoundError for an unknown name or a missing path, StoreError for a bad name or
    a store model whose blobs are missing or have the wrong size (run `verify` for a full hash check).
    """
    path = as_path(name_or_path)
    if path is not None:
        return resolve_path(path)
    layout = StoreLayout.at(home)
    name = parse_name(str(name_or_path))
    try:
        manifest = read_manifest(layout, name)
    except ModelNotFoundError:
        bundled = _bundled(name)
        if bundled is None:
            raise
        return bundled
    return resolved_from_manifest(layout, manifest, str(name))


def _bundled(name) -> ResolvedModel | None:
    """A model that comes with the install, by its name (a store model of that name comes first)."""
    from corral.store.default_model import find_bundled

    bundled = find_bundled(str(name)) if name.is_local else None
    return _with_file_options(bundled.path, "gguf") if bundled else None


def _with_file_options(path: Path, kind: str) -> ResolvedModel:
    return ResolvedModel(path, kind, params=file_options(path, kind))


def resolve_path(path: Path) -> ResolvedModel:
    """A model outside the store: a GGUF file, an HF folder, or a folder holding one GGUF.

    Only regular files and folders outside /proc, /sys and /dev are taken (StoreError for a FIFO,
    a device, ...); the loader checks the files' content when it opens them."""
    if not os.path.lexists(path):
        raise ModelNotFoundError(f"no such file or folder: {path}")
    check_outside_system_trees(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return _with_file_options(path, "hf")
        ggufs = sorted(p for p in path.glob("*.gguf") if not p.name.lower().startswith("mmproj"))
        if len(ggufs) == 1 or (ggufs and "-00001-of-" in ggufs[0].name):
            return _with_file_options(ggufs[0], "gguf")
        raise StoreError(f"{path} has no config.json and no single .gguf file; point at the model file or folder")
    return _with_file_options(check_regular_file(path), "gguf")


def resolved_from_manifest(layout: StoreLayout, manifest: Manifest, label: str) -> ResolvedModel:
    for layer in manifest.layers:
        blob = layout.blob_path(layer.digest)
        if not blob.is_file():
            raise StoreError(f"model {label!r} is damaged: blob {layer.digest} is missing; pull or create it again")
        if blob.stat().st_size != layer.size:
            raise StoreError(
                f"model {label!r} is damaged: blob {layer.digest} has the wrong size; "
                "remove it and pull or create it again"
            )
    if manifest.kind == "gguf" and len(manifest.layers) == 1:
        path = layout.blob_path(manifest.layers[0].digest)
    else:
        folder = materialize(layout, manifest.layers)
        path = folder / manifest.layers[0].filename if manifest.kind == "gguf" else folder
    return ResolvedModel(
        path=path,
        kind=manifest.kind,
        params={**file_options(path, manifest.kind), **manifest.params},
        system=manifest.system,
        template=manifest.template,
        messages=[dict(m) for m in manifest.messages],
    )


def as_path(value: str | Path) -> Path | None:
    """A Path, an existing file or folder, or text that can only be a path (/, ./, ~, .gguf)."""
    if isinstance(value, Path):
        return expanded(value)
    text = value.strip()
    candidate = expanded(Path(text))
    if text.startswith(("/", "./", "../", "~", ".\\")) or text.lower().endswith(".gguf"):
        return candidate
    if ("/" in text or "\\" in text) and _exists(candidate):
        return candidate
    return None


def expanded(path: Path) -> Path:
    """`~` expanded; a `~user` of no known user stays as written (and is then not found)."""
    try:
        return path.expanduser()
    except (RuntimeError, ValueError):  # ValueError: a NUL byte in the user name
        return path


def _exists(path: Path) -> bool:
    """Like os.path.exists, but False (not an exception) for text no file can be named by
    (a NUL byte, a lone surrogate)."""
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False
