"""`create`: make a named model from a Modelfile (like `ollama create NAME -f Modelfile`).

FROM names a model in the store (its files are shared, its settings inherited and overridden)
or a path, relative to the Modelfile's folder, to a .gguf file or an HF folder (its files are
copied into blobs). A path must hold a model by content (see `corral.store.model_files`): a GGUF
file, a folder with config.json and safetensors weights, or a folder with one GGUF; anything else
(`/etc/shadow`, `/proc/...`, a FIFO, a text file named `x.gguf`) is refused before a byte is
copied. Without a base folder (the server's /api/create) relative paths are refused rather than
resolved against the process's working folder. Anything wrong leaves the store as it was.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from corral.errors import ModelNotFoundError, StoreError
from corral.store.blobs import import_file
from corral.store.catalog import ModelEntry, entry_for, existing_manifest
from corral.store.details import gguf_model_info, hf_model_info, summary_details
from corral.store.gc import collect_garbage
from corral.store.layout import StoreLayout
from corral.store.manifest import FILE_LAYER, GGUF_LAYER, Layer, Manifest, check_filename, manifest_path, modified_at, read_manifest, write_manifest
from corral.store.model_files import (
    check_gguf, check_model_folder, check_outside_system_trees, check_regular_file, check_safetensors,
)
from corral.store.modelfile import Modelfile, parse_modelfile
from corral.store.names import parse_name
from corral.store.progress import ProgressCallback, ProgressEvent, ignore_progress
from corral.store.pull import HF_SIDE_FILES
from corral.store.resolve import expanded

_SPLIT_PART = re.compile(r"^(?P<base>.+)-00001-of-(?P<count>\d{5})\.gguf$", re.I)


def create(
    name: str,
    modelfile_text: str,
    base_dir: str | Path | None = ".",
    *,
    home: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> ModelEntry:
    """Create (or replace) `name` from Modelfile text; relative FROM paths start at `base_dir`
    (None: relative paths are refused). StoreError for a FROM that is not a model."""
    report = on_progress or ignore_progress
    layout = StoreLayout.at(home)
    target = parse_name(name)
    report(ProgressEvent("parsing modelfile"))
    modelfile = parse_modelfile(modelfile_text)
    base_folder = Path(base_dir) if base_dir is not None else None
    base = _base_manifest(layout, modelfile.from_, base_folder)
    added: list[str] = []
    try:
        if base is None:
            base = _import_path(layout, _from_path(modelfile.from_, base_folder), modelfile.from_, added, report)
        manifest = _apply_modelfile(base, modelfile)
        report(ProgressEvent("writing manifest"))
        replaced = existing_manifest(layout, target)
        write_manifest(layout, target, manifest)
    except BaseException:
        for digest in added:
            layout.blob_path(digest).unlink(missing_ok=True)
        raise
    if replaced is not None:
        collect_garbage(layout, [replaced])
    report(ProgressEvent("success"))
    return entry_for(str(target), manifest, modified_at(manifest_path(layout, target)))


def _base_manifest(layout: StoreLayout, from_: str, base_dir: Path | None) -> Manifest | None:
    """The store model FROM names, or None when FROM is a path; StoreError when it is neither."""
    path = _from_path(from_, base_dir)
    if path is not None and os.path.lexists(path):
        return None
    if from_.startswith(("/", "./", "../", "~", ".\\")) or from_.lower().endswith(".gguf"):
        if path is None:
            raise StoreError(
                f"FROM {from_}: a relative path is not accepted here (there is no Modelfile folder to "
                "resolve it against); give an absolute path on the server's machine or a store model name"
            )
        raise StoreError(f"FROM {from_}: no such file or folder ({path})")
    try:
        return read_manifest(layout, parse_name(from_))
    except (ModelNotFoundError, StoreError):
        where = f" and no such path under {base_dir}" if base_dir is not None else ""
        raise StoreError(
            f"FROM {from_}: no such model in the store{where}; pull the model first or fix the path"
        ) from None


def _from_path(from_: str, base_dir: Path | None) -> Path | None:
    """FROM as a path: absolute as given, relative under `base_dir` (None when there is none)."""
    path = expanded(Path(from_))
    if path.is_absolute():
        return path
    return base_dir / path if base_dir is not None else None


def _model_files(path: Path, shown: str) -> tuple[str, list[Path]]:
    """("gguf", its parts) or ("hf", the folder's files), each checked by content; StoreError
    for anything that is not a model."""
    check_outside_system_trees(path, shown)  # each file is checked again, links followed, when opened
    if not os.path.isdir(path):  # names (split parts, layer file names) are the link's, not its target's
        return "gguf", [check_gguf(p, p.name if p != path else shown) for p in _gguf_parts(path)]
    if os.path.lexists(path / "config.json"):
        weights = check_model_folder(path, shown)
        side = [path / f for f in HF_SIDE_FILES if os.path.lexists(path / f)]
        return "hf", [check_regular_file(f, f"{shown}/{f.name}") for f in side] + weights
    ggufs = sorted(p for p in path.glob("*.gguf") if not p.name.lower().startswith("mmproj"))
    if len(ggufs) == 1 or (ggufs and "-00001-of-" in ggufs[0].name):
        return "gguf", [check_gguf(p, f"{shown}/{p.name}") for p in _gguf_parts(ggufs[0])]
    raise StoreError(f"FROM {shown}: the folder has no config.json and no single .gguf file; "
                     "point at the model file or folder")


def _import_path(layout: StoreLayout, path: Path, shown: str, added: list[str], report: ProgressCallback) -> Manifest:
    kind, files = _model_files(path, shown)
    media = GGUF_LAYER if kind == "gguf" else FILE_LAYER
    layers = []
    for file in files:
        report(ProgressEvent(f"copying file {file.name}", filename=str(file)))
        existed_before = _blobs(layout)
        digest, size = import_file(layout, file)
        if digest not in existed_before:
            added.append(digest)
        _recheck(layout.blob_path(digest), media, file.name)  # the bytes stored, should the file have changed
        layers.append(Layer(media, digest, size, check_filename(file.name)))
    blobs = {l.filename: layout.blob_path(l.digest) for l in layers}
    info = gguf_model_info(blobs[layers[0].filename]) if kind == "gguf" else hf_model_info(blobs)
    return Manifest(kind=kind, layers=tuple(layers), details=summary_details(info))


def _recheck(blob: Path, media: str, filename: str) -> None:
    if media == GGUF_LAYER:
        check_gguf(blob, filename)
    elif filename.endswith(".safetensors"):
        check_safetensors(blob, filename)


def _gguf_parts(first: Path) -> list[Path]:
    m = _SPLIT_PART.match(first.name)
    if not m:
        return [first]
    count = int(m["count"])
    parts = [first.with_name(f"{m['base']}-{i:05d}-of-{m['count']}.gguf") for i in range(1, count + 1)]
    missing = [p.name for p in parts if not os.path.lexists(p)]
    if missing:
        raise StoreError(f"split GGUF {first.name} is incomplete: missing {', '.join(missing)}")
    return parts


def _blobs(layout: StoreLayout) -> set[str]:
    if not layout.blobs.is_dir():
        return set()
    return {p.name.replace("-", ":", 1) for p in layout.blobs.iterdir()}


def _apply_modelfile(base: Manifest, modelfile: Modelfile) -> Manifest:
    """The base's settings overridden by the Modelfile's (PARAMETERs merge key by key)."""
    return base.with_overrides(
        params={**base.params, **modelfile.params},
        system=modelfile.system if modelfile.system is not None else base.system,
        template=modelfile.template if modelfile.template is not None else base.template,
        messages=tuple(modelfile.messages) if modelfile.messages else base.messages,
        license=modelfile.license if modelfile.license is not None else base.license,
    )
