"""Garbage collection: delete the blobs and link folders of dropped manifests that nothing else uses.

Only what the dropped manifests referred to is considered, never "everything unreferenced": a
pull running at the same time has blobs no manifest names yet, and they must survive.
"""
from __future__ import annotations

import shutil
from typing import Iterable

from corral.errors import StoreError
from corral.store.folders import folder_id
from corral.store.layout import StoreLayout
from corral.store.manifest import Manifest, iter_manifests


def collect_garbage(layout: StoreLayout, dropped: Iterable[Manifest]) -> list[str]:
    """Remove the blobs and folders of `dropped` that no remaining manifest uses; returns removed digests.

    If any manifest cannot be read, nothing is removed: its blobs cannot be told apart from garbage.
    """
    dropped = list(dropped)
    digests: set[str] = set()
    folders: set[str] = set()
    for name, path in iter_manifests(layout):
        try:
            manifest = Manifest.from_bytes(path.read_bytes(), where=f"manifest of {name}")
        except (OSError, StoreError):
            return []
        digests.update(l.digest for l in manifest.layers)
        folders.add(folder_id(manifest.layers))
    removed: list[str] = []
    for manifest in dropped:
        for layer in manifest.layers:
            blob = layout.blob_path(layer.digest)
            if layer.digest not in digests and blob.is_file():
                blob.unlink()
                removed.append(layer.digest)
        folder = layout.folders / folder_id(manifest.layers)
        if folder.name not in folders and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
    return removed
