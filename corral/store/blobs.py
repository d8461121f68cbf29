"""Content-addressed blobs: a file named by the sha256 of its bytes, verified when written.

A blob only appears under `blobs/` by an atomic rename after its hash has been checked, so a
blob file present is complete; `verify_blob` re-hashes on demand to catch later corruption.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from corral.errors import StoreError
from corral.store.layout import StoreLayout
from corral.store.model_files import open_regular_file

CHUNK = 1 << 20  # bytes read per hashing step
BLOB_MODE = 0o644


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    """`sha256:<hex>` of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def check_digest(digest: str) -> str:
    """Return `digest` if it is `sha256:` + 64 lowercase hex digits, else raise StoreError."""
    prefix, _, hexpart = digest.partition(":")
    if prefix != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise StoreError(f"invalid blob digest {digest!r}; expected sha256:<64 hex digits>")
    return digest


def commit_blob(layout: StoreLayout, staged: Path, digest: str) -> Path:
    """Move a fully written and hash-checked file into `blobs/` as mode 0644 (the store's own
    file, whatever the mode of its source). Idempotent."""
    target = layout.blob_path(check_digest(digest))
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        staged.unlink(missing_ok=True)
        return target
    os.chmod(staged, BLOB_MODE)
    os.replace(staged, target)
    return target


def import_file(layout: StoreLayout, source: Path) -> tuple[str, int]:
    """Copy `source` into the store as a blob; returns (digest, size). Nothing is left on failure.
    Only a regular file outside /proc, /sys and /dev is read (StoreError otherwise)."""
    source_fd = open_regular_file(source)
    try:
        layout.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=layout.tmp, prefix=".import-")
    except BaseException:
        os.close(source_fd)
        raise
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(source_fd, "rb") as src, os.fdopen(fd, "wb") as out:
            while chunk := src.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        digest = "sha256:" + h.hexdigest()
        commit_blob(layout, tmp, digest)
        return digest, size
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise disk_full_error(layout.root, size) from None
        raise StoreError(f"cannot import {source}: {e.strerror or e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def verify_blob(layout: StoreLayout, digest: str, size: int | None = None) -> Path:
    """Re-hash a blob; raise StoreError if it is missing, of the wrong size or corrupt."""
    path = layout.blob_path(check_digest(digest))
    if not path.is_file():
        raise StoreError(f"blob {digest} is missing from {layout.blobs}; pull or create the model again")
    if size is not None and path.stat().st_size != size:
        raise StoreError(
            f"blob {digest} has {path.stat().st_size} bytes, expected {size}: it is corrupt; "
            "remove the model and pull or create it again"
        )
    actual = file_digest(path)
    if actual != digest:
        raise StoreError(
            f"blob {digest} is corrupt (its content hashes to {actual}); "
            "remove the model and pull or create it again"
        )
    return path


def disk_full_error(where: Path, needed: int | None = None) -> StoreError:
    free = _free_bytes(where)
    need = f" {needed} more bytes are needed;" if needed else ""
    return StoreError(f"disk full under {where}:{need} {free} bytes free. Free some space and try again")


def _free_bytes(where: Path) -> int:
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return 0
