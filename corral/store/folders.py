"""Multi-file models (HF folders, split GGUFs) as folders of links to their blobs.

Loaders expect a normal folder with the original file names (`config.json`, `model.safetensors`),
so each distinct set of (filename, blob) pairs gets `folders/<id>/` holding one relative symlink per
file (a hardlink where symlinks are not allowed, a copy as the last resort). Two names for the same
files share the folder; the folder is built in `tmp/` and renamed into place, so it is complete or
absent.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from corral.store.layout import StoreLayout
from corral.store.manifest import Layer


def folder_id(layers: Iterable[Layer]) -> str:
    """Stable id of a set of files: sha256 over sorted "filename digest" lines, 32 hex digits."""
    lines = sorted(f"{l.filename} {l.digest}" for l in layers)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]


def materialize(layout: StoreLayout, layers: tuple[Layer, ...]) -> Path:
    """The folder for `layers`, built if missing or broken. The blobs must exist."""
    target = layout.folders / folder_id(layers)
    if _complete(target, layout, layers):
        return target
    layout.tmp.mkdir(parents=True, exist_ok=True)
    layout.folders.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=layout.tmp, prefix=".folder-"))
    try:
        for layer in layers:
            _link(layout.blob_path(layer.digest), staging / layer.filename)
        if target.exists():
            shutil.rmtree(target)
        try:
            os.rename(staging, target)
        except OSError:
            if not _complete(target, layout, layers):  # not a concurrent build that won the race
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def _link(blob: Path, link: Path) -> None:
    # Relative, so the store can be moved: tmp/<x>/f and folders/<id>/f sit at the same depth.
    relative = os.path.relpath(blob, link.parent)
    try:
        os.symlink(relative, link)
        return
    except (OSError, NotImplementedError):
        pass
    try:
        os.link(blob, link)
    except OSError:
        shutil.copyfile(blob, link)


def _complete(folder: Path, layout: StoreLayout, layers: tuple[Layer, ...]) -> bool:
    if not folder.is_dir():
        return False
    for layer in layers:
        path = folder / layer.filename
        if path.is_symlink():
            if Path(os.path.normpath(path.parent / os.readlink(path))) != layout.blob_path(layer.digest):
                return False
        elif not path.is_file() or path.stat().st_size != layer.size:
            return False
    return len(list(folder.iterdir())) == len(layers)
