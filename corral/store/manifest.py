"""Manifests: the JSON file that says what a model name points to.

```json
{"schemaVersion": 1, "kind": "gguf" | "hf",
 "layers": [{"mediaType": "...", "digest": "sha256:...", "size": 123, "filename": "model.gguf"}],
 "params": {"stop": ["<|im_end|>"]}, "system": null, "template": null, "messages": [],
 "license": null, "details": {"format": "gguf", "family": "qwen2", ...},
 "source": {"repo": "ORG/REPO", "revision": "<commit>"}}
```

A GGUF model has one layer per file (several for a split GGUF, in part order); an HF-folder
model has one layer per file of the folder, each keeping its original filename. The manifest's
own sha256 is the model's ID.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from corral.errors import ModelNotFoundError, StoreError
from corral.store.atomic import remove_empty_parents, write_bytes_atomic
from corral.store.blobs import check_digest, sha256_digest
from corral.store.layout import StoreLayout
from corral.store.names import ModelName, name_from_manifest_relpath

SCHEMA_VERSION = 1
GGUF_LAYER = "application/vnd.corral.model.gguf"
FILE_LAYER = "application/vnd.corral.model.file"
KINDS = ("gguf", "hf")


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str  # "sha256:<hex>"
    size: int  # bytes
    filename: str  # original file name, no folder part


@dataclass(frozen=True)
class Manifest:
    kind: str  # "gguf" or "hf"
    layers: tuple[Layer, ...]
    params: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    template: str | None = None
    messages: tuple[dict[str, str], ...] = ()
    license: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] | None = None

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    def with_overrides(self, **changes: Any) -> "Manifest":
        return replace(self, **changes)

    def to_bytes(self) -> bytes:
        body = {
            "schemaVersion": SCHEMA_VERSION,
            "kind": self.kind,
            "layers": [
                {"mediaType": l.media_type, "digest": l.digest, "size": l.size, "filename": l.filename}
                for l in self.layers
            ],
            "params": self.params,
            "system": self.system,
            "template": self.template,
            "messages": list(self.messages),
            "license": self.license,
            "details": self.details,
            "source": self.source,
        }
        return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"

    @property
    def digest(self) -> str:
        return sha256_digest(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "manifest") -> "Manifest":
        """Parse and validate; a damaged manifest raises StoreError naming `where`."""
        try:
            body = json.loads(data)
            layers = tuple(
                Layer(str(l["mediaType"]), check_digest(str(l["digest"])), int(l["size"]), check_filename(str(l["filename"])))
                for l in body["layers"]
            )
            kind = body["kind"]
            if kind not in KINDS or not layers:
                raise ValueError(f"kind {kind!r} with {len(layers)} layers")
            return cls(
                kind=kind,
                layers=layers,
                params=dict(body.get("params") or {}),
                system=body.get("system"),
                template=body.get("template"),
                messages=tuple(dict(m) for m in body.get("messages") or ()),
                license=body.get("license"),
                details=dict(body.get("details") or {}),
                source=body.get("source"),
            )
        except (ValueError, KeyError, TypeError, StoreError) as e:
            raise StoreError(f"{where} is damaged ({e}); remove the model and pull or create it again") from None


def check_filename(filename: str) -> str:
    """A layer filename must be a plain file name: no folders, no '..', no control characters."""
    if (
        not filename
        or filename in (".", "..")
        or "/" in filename
        or "\\" in filename
        or any(ord(c) < 32 for c in filename)
    ):
        raise StoreError(f"invalid file name {filename!r} in a model; expected a plain file name")
    return filename


def manifest_path(layout: StoreLayout, name: ModelName) -> Path:
    return layout.manifests.joinpath(*name.manifest_relpath().parts)


def read_manifest(layout: StoreLayout, name: ModelName) -> Manifest:
    """The manifest of `name`; ModelNotFoundError if the store has no such model."""
    path = manifest_path(layout, name)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise ModelNotFoundError(
            f"model {str(name)!r} not found; run `corral list` to see local models or `corral pull` to fetch it"
        ) from None
    return Manifest.from_bytes(data, where=f"manifest of {name}")


def write_manifest(layout: StoreLayout, name: ModelName, manifest: Manifest) -> None:
    """Point `name` at `manifest`, atomically replacing what it pointed to before."""
    path = manifest_path(layout, name)
    if path.is_dir():
        raise StoreError(f"cannot write model {str(name)!r}: {path} is a folder")
    write_bytes_atomic(path, manifest.to_bytes(), layout.tmp)


def delete_manifest(layout: StoreLayout, name: ModelName) -> None:
    path = manifest_path(layout, name)
    try:
        path.unlink()
    except FileNotFoundError:
        raise ModelNotFoundError(f"model {str(name)!r} not found; run `corral list` to see local models") from None
    remove_empty_parents(path, layout.manifests)


def iter_manifests(layout: StoreLayout) -> Iterator[tuple[ModelName, Path]]:
    """Every (name, manifest file) in the store, sorted by path; stray files are skipped."""
    if not layout.manifests.is_dir():
        return
    for path in sorted(layout.manifests.rglob("*")):
        if not path.is_file():
            continue
        name = name_from_manifest_relpath(PurePosixPath(path.relative_to(layout.manifests).as_posix()))
        if name is not None:
            yield name, path


def modified_at(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
