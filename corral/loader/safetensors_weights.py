"""Weights of a Hugging Face folder: single or sharded safetensors, memory-mapped."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch

from corral.errors import ModelFileError
from corral.loader.config_values import show

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files of `folder`, in load order; raises ModelFileError when any is missing."""
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = list(dict.fromkeys(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise ModelFileError(index, f"not a valid safetensors index ({str(e)[:200]}); re-download the model") from None
        for name in shards:
            # Shards sit beside the index: a name is never a path (no "../x", no "/etc/x").
            if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
                raise ModelFileError(index, f"shard name {show(name)} is not a file name in the model folder; "
                                            "re-download the model")
        files = [folder / name for name in shards]
    elif (folder / SINGLE_FILE).is_file():
        files = [folder / SINGLE_FILE]
    else:
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise ModelFileError(folder, f"no {SINGLE_FILE} or {INDEX_FILE}; the folder has no weights")
    for f in files:
        if not f.is_file():
            raise ModelFileError(f, "weight shard listed in the index is missing; finish the download")
    return files


def safetensors_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in `files`, read from their headers (no tensor data)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        with _open(f, safe_open) as st:
            for name in st.keys():
                shapes[name] = tuple(st.get_slice(name).get_shape())
    return shapes


def iter_safetensors_weights(files: list[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) as stored (dtype unchanged), file after file."""
    from safetensors import safe_open

    for f in files:
        with _open(f, safe_open) as st:
            for name in st.keys():
                yield name, st.get_tensor(name)


def count_safetensors_tensors(files: list[Path]) -> int:
    """Tensors in the shards, from their headers only."""
    from safetensors import safe_open

    total = 0
    for f in files:
        with _open(f, safe_open) as st:
            total += len(st.keys())
    return total


def _open(f: Path, safe_open):
    try:
        return safe_open(str(f), framework="pt")
    except Exception as e:  # safetensors raises its own SafetensorError for every header problem
        raise ModelFileError(f, f"not a readable safetensors file ({e}); re-download it") from None
