"""`create`: make a named model from a Modelfile (like `ollama create NAME -f Modelfile`).

FROM names a model in the store (its files are shared, its settings inherited and overridden)
or a path, relative to the Modelfile's folder, to a .gguf file or an HF folder (its files are
copied into blobs). Anything wrong leaves the store as it was.
"""
from __future__ import annotations

import re
from pathlib import Path

from corral.errors import ModelNotFoundError, StoreError
from corral.store.blobs import import_file
from corral.store.catalog import ModelEntry, entry_for, existing_manifest
from corral.store.details import gguf_model_info, hf_model_info, summary_details
from corral.store.gc import collect_garbage
from corral.store.layout import StoreLayout
from corral.store.manifest import FILE_LAYER, GGUF_LAYER, Layer, Manifest, check_filename, manifest_path, modified_at, read_manifest, write_manifest
from corral.store.modelfile import Modelfile, parse_modelfile
from corral.store.names import parse_name
from corral.store.progress import ProgressCallback, ProgressEvent, ignore_progress
from corral.store.pull import HF_SIDE_FILES
from corral.store.resolve import resolve_path

_SPLIT_PART = re.compile(r"^(?P<base>.+)-00001-of-(?P<count>\d{5})\.gguf$", re.I)


def create(
    name: str,
    modelfile_text: str,
    base_dir: str | Path = ".",
    *,
    home: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> ModelEntry:
    """Create (or replace) `name` from Modelfile text; relative FROM paths start at `base_dir`."""
    report = on_progress or ignore_progress
    layout = StoreLayout.at(home)
    target = parse_name(name)
    report(ProgressEvent("parsing modelfile"))
    modelfile = parse_modelfile(modelfile_text)
    base = _base_manifest(layout, modelfile.from_, Path(base_dir))
    added: list[str] = []
    try:
        if base is None:
            base = _import_path(layout, _from_path(modelfile.from_, Path(base_dir)), added, report)
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


def _base_manifest(layout: StoreLayout, from_: str, base_dir: Path) -> Manifest | None:
    """The store model FROM names, or None when FROM is a path; StoreError when it is neither."""
    path = _from_path(from_, base_dir)
    if path.exists():
        return None
    if from_.startswith(("/", "./", "../", "~")) or from_.lower().endswith(".gguf"):
        raise StoreError(f"FROM {from_}: no such file or folder ({path})")
    try:
        return read_manifest(layout, parse_name(from_))
    except (ModelNotFoundError, StoreError):
        raise StoreError(
            f"FROM {from_}: no such model in the store and no such path under {base_dir}; "
            "pull the model first or fix the path"
        ) from None


def _from_path(from_: str, base_dir: Path) -> Path:
    path = Path(from_).expanduser()
    return path if path.is_absolute() else base_dir / path


def _import_path(layout: StoreLayout, path: Path, added: list[str], report: ProgressCallback) -> Manifest:
    resolved = resolve_path(path)
    if resolved.kind == "gguf":
        files, media = _gguf_parts(resolved.path), GGUF_LAYER
    else:
        files = [resolved.path / f for f in HF_SIDE_FILES if (resolved.path / f).is_file()]
        files += sorted(resolved.path.glob("*.safetensors"))
        media = FILE_LAYER
        if not any(f.suffix == ".safetensors" for f in files):
            raise StoreError(f"FROM {path}: the folder has config.json but no *.safetensors weights")
    layers = []
    for file in files:
        report(ProgressEvent(f"copying file {file.name}", filename=str(file)))
        existed_before = _blobs(layout)
        digest, size = import_file(layout, file)
        if digest not in existed_before:
            added.append(digest)
        layers.append(Layer(media, digest, size, check_filename(file.name)))
    blobs = {l.filename: layout.blob_path(l.digest) for l in layers}
    info = gguf_model_info(blobs[layers[0].filename]) if resolved.kind == "gguf" else hf_model_info(blobs)
    return Manifest(kind=resolved.kind, layers=tuple(layers), details=summary_details(info))


def _gguf_parts(first: Path) -> list[Path]:
    m = _SPLIT_PART.match(first.name)
    if not m:
        return [first]
    count = int(m["count"])
    parts = [first.with_name(f"{m['base']}-{i:05d}-of-{m['count']}.gguf") for i in range(1, count + 1)]
    missing = [p.name for p in parts if not p.is_file()]
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
