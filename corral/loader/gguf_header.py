"""Parse the header of a GGUF file: its metadata and its tensor index, nothing of the tensor data.

Layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), little-endian throughout:

    magic "GGUF" | version u32 (2 or 3) | tensor count u64 | metadata count u64
    metadata:     key (string) | value type u32 | value
    tensor infos: name (string) | n_dims u32 | dims u64 x n_dims (innermost first) | type u32 | offset u64
    padding up to `general.alignment` (default 32); tensor offsets count from there.

A string is a u64 byte count and that many UTF-8 bytes; an array is an element type u32, a count
u64 and the elements. Values become plain Python: numbers and bools are int, float or bool;
strings are str; arrays of strings are list[str]; arrays of numbers are 1-D numpy arrays (one
allocation for 150k token scores, not 150k Python floats); arrays of arrays are lists of those.
Arrays of LAZY_STRINGS or more strings (vocabularies, merges) are checked for length but left in
the file as LazyStrings, decoded only when asked for: a model's 150k tokens and merges then exist as
Python strings only while its tokenizer is built.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_NESTING = 16  # arrays of arrays of ... (real files nest one level at most)
MAX_SUBARRAYS = 1 << 16  # arrays in one array: each is 12 bytes of file but ~100 of Python objects
LAZY_STRINGS = 1024

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
STRING, ARRAY = 8, 9
# value type -> little-endian numpy dtype (scalars are read with the same layout)
NUMERIC = {
    0: np.dtype("<u1"), 1: np.dtype("<i1"), 2: np.dtype("<u2"), 3: np.dtype("<i2"),
    4: np.dtype("<u4"), 5: np.dtype("<i4"), 6: np.dtype("<f4"), 7: np.dtype("?"),
    10: np.dtype("<u8"), 11: np.dtype("<i8"), 12: np.dtype("<f8"),
}
SCALARS = {t: struct.Struct("<" + c) for t, c in zip(NUMERIC, "BbHhIif?Qqd")}


class HeaderError(ValueError):
    """The header is not valid GGUF; the message says where and why (the caller names the file)."""


class PastEndError(HeaderError):
    """A read ran past the end of the buffer: the file is truncated, or only its start was read."""


class LazyStrings:
    """An array of strings still in the file; `decode()` reads it into a new list each call."""

    def __init__(self, buf, start: int, count: int, what: str):
        self._buf, self._start, self.count, self._what = buf, start, count, what

    def decode(self) -> list[str]:
        """Raises HeaderError for a string that is not valid UTF-8."""
        r = _Reader(self._buf)
        r.pos = self._start
        return r.strings(self.count, self._what)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]  # as stored: innermost (contiguous) dimension first
    type_id: int  # ggml type, see ggml_types.GGML_TYPE_IDS
    offset: int  # bytes from the start of the data section


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    metadata: dict[str, Any]  # long string arrays as LazyStrings
    tensors: list[TensorInfo]  # in file order
    alignment: int
    data_offset: int  # absolute byte offset of the data section


def parse_header(buf) -> GGUFHeader:
    """Parse the header at the start of `buf` (any bytes-like object holding the whole file,
    typically a memmap). Raises HeaderError for anything that is not a readable GGUF header."""
    r = _Reader(buf)
    if r.size < 4 or bytes(r.buf[:4]) != MAGIC:
        raise HeaderError("not a GGUF file (the first bytes are not 'GGUF')")
    r.pos = 4
    version = r.scalar(U32, "the GGUF version")
    if version not in VERSIONS:
        if version & 0xFFFF == 0:
            raise HeaderError("big-endian GGUF files are not supported; use a little-endian file")
        raise HeaderError(f"GGUF version {version} is not supported (corral reads versions 2 and 3); "
                          "re-convert the model with a current llama.cpp")
    n_tensors = r.scalar(U64, "the tensor count")
    n_kv = r.scalar(U64, "the metadata count")

    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string("a metadata key")
        value_type = r.scalar(U32, f"the type of metadata key {key!r}")
        if key in metadata:
            raise HeaderError(f"metadata key {key!r} appears twice; the file is corrupt")
        if key == "general.alignment" and value_type != 4:
            raise HeaderError("general.alignment must be a uint32; the file is corrupt")
        metadata[key] = r.value(value_type, f"metadata key {key!r}")
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if alignment <= 0 or alignment & (alignment - 1):
        raise HeaderError(f"general.alignment is {alignment}, not a power of two; the file is corrupt")

    tensors: list[TensorInfo] = []
    names: set[str] = set()
    for _ in range(n_tensors):
        name = r.string("a tensor name")
        what = f"the info of tensor {name!r}"
        n_dims = r.scalar(U32, what)
        if n_dims > MAX_DIMS:
            raise HeaderError(f"tensor {name!r} has {n_dims} dimensions (GGUF allows {MAX_DIMS}); the file is corrupt")
        dims = struct.unpack_from(f"<{n_dims}Q", r.buf, r.take(8 * n_dims, what))
        type_id = r.scalar(U32, what)
        offset = r.scalar(U64, what)
        if name in names:
            raise HeaderError(f"tensor {name!r} appears twice; the file is corrupt")
        names.add(name)
        tensors.append(TensorInfo(name, dims, type_id, offset))
    data_offset = -(-r.pos // alignment) * alignment
    return GGUFHeader(version, metadata, tensors, alignment, data_offset)


def parse_metadata_prefix(buf) -> tuple[dict[str, Any], bool]:
    """The metadata entries that lie whole in `buf`, the first bytes of a GGUF file (say, from an
    HTTP range request), and whether that was all of them. Raises HeaderError when those bytes are
    not a GGUF header."""
    r = _Reader(buf)
    if r.size < 4 or bytes(r.buf[:4]) != MAGIC:
        raise HeaderError("not a GGUF file (the first bytes are not 'GGUF')")
    r.pos = 4
    metadata: dict[str, Any] = {}
    try:
        version = r.scalar(U32, "the GGUF version")
        if version not in VERSIONS:
            raise HeaderError(f"GGUF version {version} is not supported")
        r.scalar(U64, "the tensor count")
        n_kv = r.scalar(U64, "the metadata count")
        for _ in range(n_kv):
            key = r.string("a metadata key")
            metadata[key] = r.value(r.scalar(U32, f"the type of metadata key {key!r}"), f"metadata key {key!r}")
    except PastEndError:
        return metadata, False
    return metadata, True


class _Reader:
    """A position in `buf`; every read checks it stays inside the buffer."""

    def __init__(self, buf):
        self.buf = memoryview(buf)
        self.size = self.buf.nbytes
        self.pos = 0

    def take(self, n: int, what: str) -> int:
        """Advance over n bytes; returns where they start."""
        start = self.pos
        if start + n > self.size:
            raise self._past_end(what, start)
        self.pos = start + n
        return start

    def scalar(self, s: struct.Struct, what: str):
        return s.unpack_from(self.buf, self.take(s.size, what))[0]

    def string(self, what: str) -> str:
        n = self.scalar(U64, what)
        start = self.take(n, what)
        try:
            return str(self.buf[start:start + n], "utf-8")
        except UnicodeDecodeError:
            raise HeaderError(f"{what} at byte {start} is not valid UTF-8; the file is corrupt") from None

    def value(self, value_type: int, what: str, depth: int = 0) -> Any:
        if value_type in SCALARS:
            return self.scalar(SCALARS[value_type], what)
        if value_type == STRING:
            return self.string(what)
        if value_type != ARRAY:
            raise HeaderError(f"{what} has unknown value type {value_type}; the file is corrupt or from a newer GGUF version")
        item_type = self.scalar(U32, what)
        count = self.scalar(U64, what)
        if item_type == STRING:
            if count < LAZY_STRINGS:
                return self.strings(count, what)
            start = self.pos
            self.skip_strings(count, what)
            return LazyStrings(self.buf, start, count, what)
        if item_type in NUMERIC:
            dtype = NUMERIC[item_type]
            start = self.take(count * dtype.itemsize, what)
            # A copy in native byte order: small, and independent of the file's pages.
            return np.frombuffer(self.buf, dtype, count, start).astype(dtype.newbyteorder("="))
        if item_type == ARRAY:
            if depth >= MAX_NESTING:
                raise HeaderError(f"{what} nests arrays more than {MAX_NESTING} deep; the file is corrupt")
            if count > MAX_SUBARRAYS:
                raise HeaderError(f"{what} is an array of {count} arrays (corral reads at most {MAX_SUBARRAYS}); "
                                  "the file is corrupt")
            return [self.value(ARRAY, what, depth + 1) for _ in range(count)]  # each takes >= 12 bytes
        raise HeaderError(f"{what} is an array of unknown value type {item_type}; the file is corrupt or from a newer GGUF version")

    def strings(self, count: int, what: str) -> list[str]:
        """`count` strings, read in one tight loop (vocabularies hold 150k tokens and merges)."""
        buf, size, pos = self.buf, self.size, self.pos
        unpack = U64.unpack_from
        out: list[str] = []
        append = out.append
        for _ in range(count):
            if pos + 8 > size:
                raise self._past_end(what, pos)
            end = pos + 8 + unpack(buf, pos)[0]
            if end > size:
                raise self._past_end(what, pos)
            try:
                append(str(buf[pos + 8:end], "utf-8"))
            except UnicodeDecodeError:
                raise HeaderError(f"{what}: string {len(out)} at byte {pos} is not valid UTF-8; the file is corrupt") from None
            pos = end
        self.pos = pos
        return out

    def skip_strings(self, count: int, what: str) -> None:
        """Advance over `count` strings, checking only that each one fits in the file."""
        buf, size, pos = self.buf, self.size, self.pos
        unpack = U64.unpack_from
        for _ in range(count):
            if pos + 8 > size:
                raise self._past_end(what, pos)
            end = pos + 8 + unpack(buf, pos)[0]
            if end > size:
                raise self._past_end(what, pos)
            pos = end
        self.pos = pos

    def _past_end(self, what: str, pos: int) -> HeaderError:
        return PastEndError(f"{what} at byte {pos} runs past the end of the file ({self.size} bytes); "
                           "the file is truncated or corrupt (re-download it)")
