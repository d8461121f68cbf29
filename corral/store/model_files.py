"""Which files on disk the store takes as a model: checked by content, never by name.

A model is a GGUF file (it starts with the bytes `GGUF`), a Hugging Face folder (a regular
`config.json` beside at least one `*.safetensors` file whose header is a safetensors header), or
a folder holding one GGUF. Anything else is refused with a StoreError that says so, before a
byte of it is copied: a text file named `x.gguf`, `/etc/shadow`, anything under `/proc`, `/sys`
or `/dev`, a FIFO, a socket or a device. Symlinks are followed first, so a link cannot smuggle
in what its target could not. Files are opened non-blocking and checked with `fstat`, so a FIFO
never hangs the caller and a file swapped after the check is still refused.
"""
from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

from corral.errors import StoreError

GGUF_MAGIC = b"GGUF"
SYSTEM_TREES = (Path("/proc"), Path("/sys"), Path("/dev"))
_SAFETENSORS_MAX_HEADER = 100 << 20  # bytes; the format's own limit


def open_regular_file(path: Path, shown: str | Path | None = None) -> int:
    """A read-only descriptor of `path` if it is a regular file outside /proc, /sys and /dev,
    else StoreError saying what it is instead. `shown` is how messages name it."""
    shown = shown or path
    real = check_outside_system_trees(path, shown)
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise StoreError(f"{shown}: no such file") from None
    except OSError as e:
        raise StoreError(f"{shown}: cannot open it ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise StoreError(f"{shown} is {_kind_of(mode)}, not a model file; give a .gguf file or a model folder")
    return fd


def check_regular_file(path: Path, shown: str | Path | None = None) -> Path:
    """`path` if it is a regular file outside /proc, /sys and /dev, else StoreError."""
    os.close(open_regular_file(path, shown))
    return path


def check_outside_system_trees(path: Path, shown: str | Path | None = None) -> Path:
    """`path` with symlinks resolved; StoreError if it lies under /proc, /sys or /dev."""
    real = Path(os.path.realpath(path))
    for tree in SYSTEM_TREES:
        if real == tree or tree in real.parents:
            raise StoreError(
                f"{shown or path} is under {tree}, which holds no models; give a .gguf file or a model folder"
            )
    return real


def is_gguf(path: Path, shown: str | Path | None = None) -> bool:
    """True if `path` is a regular file starting with the GGUF magic; StoreError if it is not a
    regular file at all (a FIFO, a device, under /proc, ...)."""
    fd = open_regular_file(path, shown)
    try:
        return os.pread(fd, 4, 0) == GGUF_MAGIC
    finally:
        os.close(fd)


def check_gguf(path: Path, shown: str | Path | None = None) -> Path:
    """`path` if it is a GGUF file by content, else StoreError."""
    if not is_gguf(path, shown):
        raise StoreError(f"{shown or path} is not a GGUF file (it does not start with 'GGUF'); "
                         "give a .gguf model file or a model folder")
    return path


def check_safetensors(path: Path, shown: str | Path | None = None) -> Path:
    """`path` if it starts like a safetensors file (a little-endian u64 header length that fits
    the file, then a JSON object), else StoreError."""
    fd = open_regular_file(path, shown)
    try:
        head = os.pread(fd, 9, 0)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    ok = len(head) == 9 and head[8:9] == b"{"
    if ok:
        (header_len,) = struct.unpack("<Q", head[:8])
        ok = 2 <= header_len <= min(_SAFETENSORS_MAX_HEADER, size - 8)
    if not ok:
        raise StoreError(f"{shown or path} is not a safetensors file; give a model folder with *.safetensors weights")
    return path


def check_model_folder(folder: Path, shown: str | Path | None = None) -> list[Path]:
    """The `*.safetensors` files of an HF folder, sorted, each checked by content; StoreError
    unless the folder has a regular config.json and at least one of them."""
    shown = shown or folder
    check_outside_system_trees(folder, shown)
    check_regular_file(folder / "config.json", f"{shown}/config.json")
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise StoreError(f"{shown}: the folder has config.json but no *.safetensors weights")
    for weight in weights:
        check_safetensors(weight, f"{shown}/{weight.name}")
    return weights


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"
