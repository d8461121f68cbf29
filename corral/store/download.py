"""Resumable download of one Hub file into a verified blob.

Bytes go to `partial/<key>-partial`; a cut connection is retried with a `Range` request from the
partial's length (and a later pull resumes the same way). The complete file is checked against
the Hub's hash (LFS sha256, or the git blob sha1 for small files kept in git) before it is
renamed into `blobs/`; a mismatch or a full disk removes the partial file. Two pulls of the same
file (two processes, or two requests to one server) take turns on a lock file in `locks/`:
the second waits, then finds the blob the first committed.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from corral.errors import StoreError
from corral.store.blobs import check_digest, commit_blob, disk_full_error
from corral.store.hub import RemoteFile, RepoListing
from corral.store.layout import StoreLayout
from corral.store.progress import ProgressCallback, ProgressEvent

CHUNK = 1 << 20  # bytes per read when hashing the finished file
PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True)
class Downloaded:
    digest: str  # "sha256:<hex>"
    size: int
    newly_written: bool  # False when the blob was already in the store


class _Cut(Exception):
    """The connection dropped mid-file; the partial file holds what arrived."""


def download_file(
    client: httpx.Client,
    listing: RepoListing,
    remote: RemoteFile,
    layout: StoreLayout,
    on_progress: ProgressCallback,
    retries: int = 3,
) -> Downloaded:
    """Fetch `remote` into a blob, resuming a partial file; StoreError when it cannot (also when
    the Hub's hashes, which name the partial and blob files, are not hex of the right length)."""
    if remote.sha256:
        digest = check_digest("sha256:" + remote.sha256)
        if layout.blob_path(digest).is_file():
            on_progress(_event(remote, digest, remote.size, remote.size))
            return Downloaded(digest, layout.blob_path(digest).stat().st_size, False)
        key = digest
    else:
        key = "git:" + _git_oid(remote)
    partial = layout.partial_path(key)
    partial.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(layout.lock_path(key)):
        if remote.sha256 and layout.blob_path(digest).is_file():  # another pull finished it meanwhile
            on_progress(_event(remote, digest, remote.size, remote.size))
            return Downloaded(digest, layout.blob_path(digest).stat().st_size, False)
        return _download_locked(client, listing, remote, layout, on_progress, retries, partial)


def _git_oid(remote: RemoteFile) -> str:
    """The file's git blob id (40 or 64 hex digits), or a hash of its path when the Hub gave none."""
    oid = remote.git_oid
    if oid is None:
        return hashlib.sha256(remote.path.encode()).hexdigest()
    if len(oid) not in (40, 64) or any(c not in "0123456789abcdef" for c in oid):
        raise StoreError(f"the Hub sent an invalid git blob id {oid[:80]!r} for {remote.path}; expected hex digits")
    return oid


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """An advisory lock held for the block, its file removed after (no lock where the OS has no
    flock). A waiter that wakes on a file already removed retries on the current one."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent pulls of one file are not serialized
        yield
        return
    while True:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            f = open(lock_path, "a+b")
        except FileNotFoundError:  # the folder was removed by a pull that just finished
            continue
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            same = os.stat(lock_path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        f.close()
        with contextlib.suppress(OSError):
            lock_path.parent.rmdir()  # only when no other pull holds a lock


def _download_locked(client, listing, remote, layout, on_progress, retries, partial: Path) -> Downloaded:
    url = listing.resolve_url(remote.path)
    attempt = 0
    while True:
        try:
            _fetch_into(client, url, partial, remote, layout, on_progress)
            break
        except _Cut as cut:
            attempt += 1
            if attempt > retries:
                raise StoreError(
                    f"download of {remote.path} from {listing.endpoint} failed after {_size(partial)} bytes "
                    f"({cut}); check the network connection and run the pull again to resume it"
                ) from None
            time.sleep(min(0.2 * attempt, 2.0))
        except OSError as e:
            if e.errno == errno.ENOSPC:
                needed = (remote.size or 0) - _size(partial)
                partial.unlink(missing_ok=True)
                raise disk_full_error(layout.root, max(needed, 0)) from None
            raise StoreError(f"cannot write {partial}: {e.strerror or e}") from None
    return _verify_and_commit(partial, remote, layout, on_progress)


def _fetch_into(client, url, partial: Path, remote: RemoteFile, layout: StoreLayout, on_progress) -> None:
    offset = _size(partial)
    if remote.size is not None and offset > remote.size:
        partial.unlink()
        offset = 0
    if remote.size is not None and offset == remote.size:
        return  # complete from an earlier run; only the hash check is left
    _check_free_space(layout, partial, (remote.size or 0) - offset)
    # identity encoding: ranges then count the bytes we store.
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 416 and offset and remote.size is None:
                return  # the server says we already have every byte
            _check_status(response, remote)
            if offset and response.status_code != 206:
                offset = 0  # the server ignored the range: start over
            total = remote.size if remote.size is not None else _content_total(response, offset)
            completed = offset
            last_report = 0.0
            with open(partial, "ab" if offset else "wb") as out:
                for chunk in response.iter_raw():  # as it arrives, so a cut keeps every byte
                    out.write(chunk)
                    completed += len(chunk)
                    now = time.monotonic()
                    if now - last_report >= PROGRESS_INTERVAL_S:
                        last_report = now
                        on_progress(_event(remote, _shown_digest(remote), total, completed))
                out.flush()
                os.fsync(out.fileno())
    except httpx.TransportError as e:
        raise _Cut(f"{type(e).__name__}: {e}") from None
    if remote.size is not None and _size(partial) < remote.size:
        raise _Cut(f"got {_size(partial)} of {remote.size} bytes")
    on_progress(_event(remote, _shown_digest(remote), remote.size or _size(partial), _size(partial)))


def _verify_and_commit(partial: Path, remote: RemoteFile, layout: StoreLayout, on_progress) -> Downloaded:
    on_progress(ProgressEvent("verifying sha256 digest", filename=remote.path))
    size = _size(partial)
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\0" % size)
    with open(partial, "rb") as f:
        while chunk := f.read(CHUNK):
            sha256.update(chunk)
            sha1.update(chunk)
    problem = None
    if remote.size is not None and size != remote.size:
        problem = f"{size} bytes, the Hub says {remote.size}"
    elif remote.sha256 and sha256.hexdigest() != remote.sha256:
        problem = f"sha256 {sha256.hexdigest()}, the Hub says {remote.sha256}"
    elif not remote.sha256 and remote.git_oid and sha1.hexdigest() != remote.git_oid:
        problem = f"git blob id {sha1.hexdigest()}, the Hub says {remote.git_oid}"
    if problem:
        partial.unlink(missing_ok=True)
        raise StoreError(
            f"downloaded {remote.path} does not match the Hub ({problem}); the file was discarded, "
            "run the pull again (if it keeps failing, the mirror at HF_ENDPOINT serves a bad copy)"
        )
    digest = "sha256:" + sha256.hexdigest()
    existed = layout.blob_path(digest).is_file()
    commit_blob(layout, partial, digest)
    return Downloaded(digest, size, not existed)


def _check_status(response: httpx.Response, remote: RemoteFile) -> None:
    code = response.status_code
    if code in (200, 206):
        return
    if code == 404:
        raise StoreError(f"the Hub has no file {remote.path} in this repository (404)")
    if code in (401, 403):
        raise StoreError(f"the Hub refused {remote.path} ({code}); set HF_TOKEN to a token with access to the repo")
    raise StoreError(f"the Hub answered {code} for {remote.path}; try again later")


def _check_free_space(layout: StoreLayout, partial: Path, needed: int) -> None:
    if needed <= 0:
        return
    try:
        free = shutil.disk_usage(partial.parent).free
    except OSError:
        return
    if free < needed:
        raise disk_full_error(layout.root, needed)


def _content_total(response: httpx.Response, offset: int) -> int | None:
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _shown_digest(remote: RemoteFile) -> str | None:
    return "sha256:" + remote.sha256 if remote.sha256 else None


def _event(remote: RemoteFile, digest: str | None, total: int | None, completed: int | None) -> ProgressEvent:
    short = (digest or "").partition(":")[2][:12] or remote.path
    return ProgressEvent(f"pulling {short}", digest=digest, total=total, completed=completed, filename=remote.path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
