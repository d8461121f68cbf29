"""Open a GGUF file once, memory-mapped: its metadata as plain Python values and its tensor index.

Nothing is copied at open: tensor data stays in the page cache behind a numpy memmap until a
loader asks for one tensor. Only the header (metadata and tensor infos) is read into Python
objects, by gguf_header.parse_header.
"""
from __future__ import annotations

import math
import mmap
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corral.errors import ModelFileError, UnsupportedModelError
from corral.loader.ggml_types import GGML_TYPE_IDS, SUPPORTED_TYPES
from corral.loader.gguf_header import MAGIC as GGUF_MAGIC
from corral.loader.gguf_header import HeaderError, LazyStrings, TensorInfo, parse_header

# Types whose data is handed out as typed values; every other type (BF16 and the block
# quantizations) as raw bytes, each row its blocks: shape (..., n_values / block_size * type_size).
TYPED_VIEWS = {
    "F32": np.float32, "F16": np.float16, "F64": np.float64,
    "I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64,
}


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    type_name: str  # GGMLQuantizationType name: "F32", "Q4_K", ...
    type_id: int
    shape: tuple[int, ...]  # numpy order (outermost first): a (rows, cols) matrix is (n_out, n_in)
    data: np.ndarray  # raw bytes (uint8) or typed view straight from the memmap, no copy
    n_bytes: int


class GGUFMetadata(Mapping):
    """Metadata keys ("general.architecture", ...) -> Python values, as gguf_header describes:
    arrays of numbers are numpy arrays, arrays of strings lists of str. Long string arrays (the
    vocabulary and merges) are decoded from the file on each access, into a list the caller owns.
    """

    def __init__(self, values: dict[str, Any], path: Path):
        self._values = values
        self._path = path

    def __getitem__(self, key: str) -> Any:
        value = self._values[key]
        if isinstance(value, LazyStrings):
            try:
                return value.decode()
            except HeaderError as e:
                raise ModelFileError(self._path, str(e)) from None
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._values  # without decoding

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class GGUFFile:
    """A parsed GGUF file: `metadata` (a GGUFMetadata) and `tensors` by name.

    Raises ModelFileError for a missing, truncated or corrupt file, UnsupportedModelError for a
    tensor type id corral does not know.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        _check_magic(self.path)
        try:
            # Copy-on-write: tensors handed out are writable, and writes never reach the file.
            self._data = np.memmap(self.path, dtype=np.uint8, mode="c")
        except (OSError, ValueError) as e:
            raise ModelFileError(self.path, f"cannot map the file: {e}") from None
        try:
            header = parse_header(self._data)
        except HeaderError as e:
            raise ModelFileError(self.path, str(e)) from None
        self.version = header.version
        self.alignment = header.alignment
        self.data_offset = header.data_offset
        self.metadata = GGUFMetadata(header.metadata, self.path)
        self.tensors: dict[str, GGUFTensor] = {
            info.name: self._tensor(info) for info in header.tensors
        }

    @property
    def architecture(self) -> str:
        arch = self.metadata.get("general.architecture")
        if not isinstance(arch, str):
            raise ModelFileError(self.path, "GGUF metadata has no general.architecture")
        return arch

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def _tensor(self, info: TensorInfo) -> GGUFTensor:
        known = GGML_TYPE_IDS.get(info.type_id)
        if known is None:
            raise UnsupportedModelError(
                self.path,
                f"tensor {info.name!r} has GGML type id {info.type_id}, which corral does not know; "
                f"supported: {', '.join(SUPPORTED_TYPES)}",
            )
        type_name, block_size, type_size = known
        shape = tuple(reversed(info.dims))  # numpy order
        if 0 in shape:
            # A model tensor is never empty; numpy also refuses a huge dimension next to a 0 one.
            raise ModelFileError(self.path, f"tensor {info.name!r} has an empty dimension {shape}; the file is corrupt")
        if type_name not in TYPED_VIEWS and (not shape or shape[-1] % block_size):
            raise ModelFileError(
                self.path, f"tensor {info.name!r}: a row of {shape[-1] if shape else 0} values is not a whole "
                           f"number of {type_name} blocks of {block_size}; the file is corrupt",
            )
        n_bytes = math.prod(shape) // block_size * type_size
        start = self.data_offset + info.offset
        if start + n_bytes > self._data.size:
            raise ModelFileError(
                self.path, f"tensor {info.name!r} (bytes {start}..{start + n_bytes}) runs past the end of the file "
                           f"({self._data.size} bytes); the file is truncated (re-download it)",
            )
        raw = self._data[start:start + n_bytes]
        if type_name in TYPED_VIEWS:
            data = raw.view(TYPED_VIEWS[type_name]).reshape(shape)
        else:
            data = raw.reshape(*shape[:-1], shape[-1] // block_size * type_size)
        return GGUFTensor(info.name, type_name, info.type_id, shape, data, n_bytes)


def _check_magic(path: Path) -> None:
    if not path.is_file():
        raise ModelFileError(path, "no such file")
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:4] != GGUF_MAGIC:
        raise ModelFileError(path, "not a GGUF file (the first bytes are not 'GGUF')")
    if len(head) < 24:
        raise ModelFileError(path, "GGUF file is truncated (header incomplete)")


def is_gguf(path: str | Path) -> bool:
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as f:
        return f.read(4) == GGUF_MAGIC


def release_pages(array: np.ndarray) -> int:
    """Drop this process's resident pages of a view of a memory-mapped file, once a copy of it is
    what the model uses (Q4_0 repacked for the kernels): they would otherwise count in RSS next to
    the copy. The data stays valid; a later read maps the pages in again from the file. Only
    whole pages inside the view are released. Returns the bytes released (0 where the array is not
    a file view or the OS has no madvise)."""
    advice = getattr(mmap, "MADV_DONTNEED", None)
    found = _file_span(array)
    if found is None or advice is None:
        return 0
    mm, begin, end = found
    first = -(-begin // mmap.PAGESIZE) * mmap.PAGESIZE
    last = end // mmap.PAGESIZE * mmap.PAGESIZE
    if last <= first:
        return 0
    mm.madvise(advice, first, last - first)
    return last - first


# Linux 5.14 and later: fault a range's pages in now, reading the file where it is not cached.
MADV_POPULATE_READ = 22


def populate_pages(array: np.ndarray) -> int:
    """Map every page of a view of a memory-mapped file into this process now, instead of one
    fault per page the first time a decode step reads it: a mixture's experts are first read tokens
    into a generation, tens of thousands of faults over its first 64 tokens (Qwen3-30B-A3B's shape,
    6 layers). Where the kernel has no MADV_POPULATE_READ, the pages are only read ahead into the
    page cache (MADV_WILLNEED). Returns the bytes advised (0 where the array is not a file view or
    neither advice took)."""
    found = _file_span(array)
    if found is None or not sys.platform.startswith("linux"):
        return 0
    mm, begin, end = found
    first = begin // mmap.PAGESIZE * mmap.PAGESIZE
    for advice in (MADV_POPULATE_READ, mmap.MADV_WILLNEED):  # EINVAL: a kernel before 5.14
        try:
            mm.madvise(advice, first, end - first)
            return end - first
        except OSError:  # only a head start: the pages are read on first use as before
            continue
    return 0


def is_file_view(array: np.ndarray) -> bool:
    """Whether `array` is a contiguous view of a memory-mapped file (what `populate_pages` and
    `release_pages` act on)."""
    return _file_span(array) is not None


def _file_span(array: np.ndarray) -> tuple[mmap.mmap, int, int] | None:
    """(the file mapping, first byte, end) of a contiguous view of a memory-mapped file, else None."""
    base = array
    while base is not None and not isinstance(getattr(base, "_mmap", None), mmap.mmap):
        base = getattr(base, "base", None)
    if base is None or not array.flags.c_contiguous:
        return None
    mm = base._mmap
    start_addr = np.frombuffer(mm, dtype=np.uint8).ctypes.data  # the mapping's first byte
    begin = array.ctypes.data - start_addr
    end = begin + array.nbytes
    if not 0 <= begin <= end <= len(mm):
        return None
    return mm, begin, end
