"""List, copy, remove and verify the models in the store."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from corral.errors import ModelNotFoundError, StoreError
from corral.store.blobs import verify_blob
from corral.store.gc import collect_garbage
from corral.store.layout import StoreLayout
from corral.store.manifest import (
    Manifest, delete_manifest, iter_manifests, manifest_path, modified_at, read_manifest, write_manifest,
)
from corral.store.names import ModelName, parse_name


class ModelExistsError(StoreError):
    """The destination name of a copy is taken; the store is unchanged."""

    status = 409
    code = "model_exists"


@dataclass(frozen=True)
class ModelEntry:
    """One line of `corral list`: `digest` is the manifest's sha256 (the model ID), `size` in bytes.

    `damage` says what is wrong with a model that cannot be used as it is (a manifest that does
    not parse, a blob missing or of the wrong size); None for a sound one."""

    name: str
    size: int
    digest: str
    modified_at: datetime
    details: dict[str, Any] = field(default_factory=dict)
    damage: str | None = None


def list_models(*, home: str | Path | None = None) -> list[ModelEntry]:
    """Every model in the store, most recently modified first; damaged ones too, with `damage`
    set (blobs are checked for presence and size, not re-hashed: `verify` does that)."""
    layout = StoreLayout.at(home)
    entries = []
    for name, path in iter_manifests(layout):
        try:
            manifest = Manifest.from_bytes(path.read_bytes(), where="the manifest")
        except (OSError, StoreError) as e:
            problem = e.message if isinstance(e, StoreError) else f"the manifest cannot be read ({e.strerror or e})"
            entries.append(ModelEntry(str(name), 0, "", _mtime(path), damage=problem))
            continue
        entries.append(entry_for(str(name), manifest, modified_at(path), blob_damage(layout, manifest)))
    return sorted(entries, key=lambda e: (-e.modified_at.timestamp(), e.name))


def entry_for(name: str, manifest: Manifest, when: datetime, damage: str | None = None) -> ModelEntry:
    return ModelEntry(name, manifest.size, manifest.digest, when, dict(manifest.details), damage)


def blob_damage(layout: StoreLayout, manifest: Manifest) -> str | None:
    """What is wrong with the manifest's blobs (the first missing or wrong-sized one), or None."""
    for layer in manifest.layers:
        try:
            size = layout.blob_path(layer.digest).stat().st_size
        except OSError:
            return f"blob {layer.digest} ({layer.filename}) is missing; remove the model and pull or create it again"
        if size != layer.size:
            return (f"blob {layer.digest} ({layer.filename}) has {size} bytes, expected {layer.size}; "
                    "remove the model and pull or create it again")
    return None


def _mtime(path: Path) -> datetime:
    try:
        return modified_at(path)
    except OSError:
        return datetime.fromtimestamp(0, tz=timezone.utc)


def copy(src: str, dst: str, *, home: str | Path | None = None, force: bool = False) -> None:
    """Make `dst` point at what `src` points at; blobs are shared, not copied. An existing `dst`
    is replaced only with `force` (ModelExistsError otherwise, the store unchanged)."""
    layout = StoreLayout.at(home)
    src_name, dst_name = parse_name(src), parse_name(dst)
    manifest = read_manifest(layout, src_name)
    if not force and manifest_path(layout, dst_name).exists():
        raise ModelExistsError(f"model {str(dst_name)!r} already exists; remove it first or copy to another name")
    replaced = existing_manifest(layout, dst_name)
    write_manifest(layout, dst_name, manifest)
    if replaced is not None:
        collect_garbage(layout, [replaced])


def existing_manifest(layout: StoreLayout, name: ModelName) -> Manifest | None:
    """What `name` points to now, or None if nothing (or a damaged manifest)."""
    try:
        return read_manifest(layout, name)
    except (ModelNotFoundError, StoreError):
        return None


def remove(name: str, *, home: str | Path | None = None) -> None:
    """Delete the name; its blobs that no other name uses go too. ModelNotFoundError if unknown;
    StoreError, saying why, for a model that comes with the install."""
    layout = StoreLayout.at(home)
    model = parse_name(name)
    try:
        dropped = [read_manifest(layout, model)]  # unknown -> ModelNotFoundError, nothing changes
    except ModelNotFoundError:
        refuse_bundled_removal(model)
        raise
    except StoreError:
        dropped = []  # a damaged manifest: drop the name, keep blobs (which are its is unknown)
    delete_manifest(layout, model)
    collect_garbage(layout, dropped)


def verify(name: str, *, home: str | Path | None = None) -> None:
    """Re-hash every blob of the model; StoreError naming the first missing or corrupt one."""
    layout = StoreLayout.at(home)
    manifest = read_manifest(layout, parse_name(name))
    for layer in manifest.layers:
        verify_blob(layout, layer.digest, layer.size)


def refuse_bundled_removal(model: ModelName) -> None:
    """StoreError that says how a bundled model goes away, if `model` names one; else nothing."""
    from corral.store.default_model import SMOLLM2_NAME, SMOLLM2_PACKAGE, find_bundled

    bundled = find_bundled(str(model)) if model.is_local else None
    if bundled is None:
        return
    if bundled.name == SMOLLM2_NAME:
        how = (f"it comes from the {SMOLLM2_PACKAGE.replace('_', '-')} Python package, which "
               f"`pip uninstall {SMOLLM2_PACKAGE.replace('_', '-')}` removes (corral-mini is the default then)")
    else:
        how = "it is part of corral itself"
    raise StoreError(f"{bundled.name} comes with the install and is not in the store, so it cannot be removed: {how}")
