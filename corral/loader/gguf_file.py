"""Open a GGUF file once, memory-mapped: its metadata as plain Python values and its tensor index.

Nothing is copied at open: tensor data stays in the page cache behind a numpy memmap until a
loader asks for one tensor.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corral.errors import ModelFileError

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    type_name: str  # GGMLQuantizationType name: "F32", "Q4_K", ...
    type_id: int
    shape: tuple[int, ...]  # numpy order (outermost first): a (rows, cols) matrix is (n_out, n_in)
    data: np.ndarray  # raw bytes (uint8) or typed view straight from the memmap, no copy
    n_bytes: int


class GGUFFile:
    """A parsed GGUF file. `metadata` maps keys like "general.architecture" to Python values."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        _check_magic(self.path)
        import gguf

        try:
            # Copy-on-write: tensors handed out are writable, and writes never reach the file.
            reader = gguf.GGUFReader(self.path, "c")
        except (ValueError, IndexError, KeyError, OSError, OverflowError, MemoryError) as e:
            raise ModelFileError(self.path, f"not a readable GGUF file (truncated or corrupt): {e}") from None
        self.metadata: dict[str, Any] = {}
        for name, field in reader.fields.items():
            if name.startswith("GGUF."):
                continue
            try:
                self.metadata[name] = field.contents()
            except (UnicodeDecodeError, IndexError) as e:
                raise ModelFileError(self.path, f"metadata key {name!r} is corrupt: {e}") from None
        self.tensors: dict[str, GGUFTensor] = {}
        for t in reader.tensors:
            try:
                type_name = gguf.GGMLQuantizationType(int(t.tensor_type)).name
            except ValueError:
                type_name = f"type{int(t.tensor_type)}"
            # gguf stores dims innermost first; reverse to numpy order.
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            self.tensors[t.name] = GGUFTensor(
                t.name, type_name, int(t.tensor_type), shape, t.data, int(t.n_bytes)
            )
        self._reader = reader

    @property
    def architecture(self) -> str:
        arch = self.metadata.get("general.architecture")
        if not isinstance(arch, str):
            raise ModelFileError(self.path, "GGUF metadata has no general.architecture")
        return arch

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)


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
