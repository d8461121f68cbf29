"""`pull`: fetch a model from the Hugging Face Hub into the store.

- ``hf.co/ORG/REPO[:QUANT]``: the GGUF file (or split parts) of that quantization, Q4_K_M by default;
- ``ORG/REPO[:REVISION]``: config, tokenizer, generation config, chat template and safetensors weights
  (falling back to the preferred GGUF when the repo has no safetensors).

Files download resumably and are hash-checked; the name is written only once every file is in
place. If the pull fails, blobs it added go back to `partial/` (so the next pull resumes without
downloading them again) and the store's models are as they were.
"""
from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

import httpx

from corral import __version__, envs
from corral.errors import StoreError
from corral.store.catalog import ModelEntry, entry_for, existing_manifest
from corral.store.gc import collect_garbage
from corral.store.details import gguf_model_info, hf_model_info, summary_details
from corral.store.download import Downloaded, download_file
from corral.store.hub import RemoteFile, RepoListing, fetch_listing
from corral.store.layout import StoreLayout
from corral.store.manifest import FILE_LAYER, GGUF_LAYER, Layer, Manifest, check_filename, manifest_path, modified_at, write_manifest
from corral.store.names import GGUF_HOST, parse_name
from corral.store.progress import ProgressCallback, ProgressEvent, ignore_progress
from corral.store.quants import select_gguf

# Files an HF folder needs besides its weights; any that the repo lacks are skipped.
HF_SIDE_FILES = (
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
    "chat_template.json", "chat_template.jinja", "model.safetensors.index.json",
)
SAFETENSORS_INDEX = "model.safetensors.index.json"


def pull(
    name: str,
    on_progress: ProgressCallback | None = None,
    *,
    home: str | Path | None = None,
    retries: int = 3,
) -> ModelEntry:
    """Fetch `name` from the Hub; returns its new list entry. StoreError on any failure.

    `on_progress` receives ProgressEvents as Ollama's /api/pull streams them. `retries` is how many
    times a cut download is resumed before giving up (the partial file stays for the next pull).
    """
    report = on_progress or ignore_progress
    layout = StoreLayout.at(home)
    model = parse_name(name)
    if model.is_local:
        raise StoreError(
            f"{name!r} is a local name and cannot be pulled; pull hf.co/ORG/REPO:QUANT for a GGUF repo "
            "or ORG/REPO for a safetensors repo"
        )
    report(ProgressEvent("pulling manifest"))
    if model.host == GGUF_HOST:
        listing = fetch_listing(model.hub_repo, "main")
        kind, paths = "gguf", list(select_gguf(model.hub_repo, list(listing.files), model.tag).files)
    else:
        listing = fetch_listing(model.hub_repo, "main" if model.tag == "latest" else model.tag)
        kind, paths = _hf_folder_plan(listing)
    added: list[tuple[RemoteFile, Downloaded]] = []
    try:
        with _client() as client:
            layers = []
            for path in paths:
                remote = listing.files[path]
                got = download_file(client, listing, remote, layout, report, retries=retries)
                if got.newly_written:
                    added.append((remote, got))
                layers.append(_layer(kind, path, got))
                if path == SAFETENSORS_INDEX:
                    for shard in _index_shards(layout.blob_path(got.digest), listing):
                        if shard not in paths:
                            paths.append(shard)
        manifest = Manifest(
            kind=kind,
            layers=tuple(layers),
            details=summary_details(_model_info(layout, kind, layers)),
            source={"repo": model.hub_repo, "revision": listing.commit, "endpoint": listing.endpoint},
        )
        report(ProgressEvent("writing manifest"))
        replaced = existing_manifest(layout, model)
        write_manifest(layout, model, manifest)
    except BaseException:
        _roll_back(layout, added)
        raise
    if replaced is not None:
        collect_garbage(layout, [replaced])
    report(ProgressEvent("success"))
    return entry_for(str(model), manifest, modified_at(manifest_path(layout, model)))


def _hf_folder_plan(listing: RepoListing) -> tuple[str, list[str]]:
    top = [p for p in listing.files if "/" not in p]
    weights = sorted(p for p in top if p.endswith(".safetensors") and not p.startswith("consolidated"))
    if not weights or "config.json" not in listing.files:
        if any(p.lower().endswith(".gguf") for p in listing.files):
            return "gguf", list(select_gguf(listing.repo, list(listing.files), "latest").files)
        raise StoreError(
            f"repository {listing.repo} has no config.json with *.safetensors weights and no GGUF file; "
            "corral cannot run it"
        )
    side = [p for p in HF_SIDE_FILES if p in listing.files]
    if SAFETENSORS_INDEX in listing.files:
        return "hf", side  # the shards are added once the index is read
    return "hf", side + weights


def _index_shards(index_path: Path, listing: RepoListing) -> list[str]:
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise StoreError(f"{SAFETENSORS_INDEX} of {listing.repo} is not a valid safetensors index") from None
    missing = [s for s in shards if s not in listing.files]
    if missing:
        raise StoreError(f"{listing.repo}: the safetensors index names files the repo lacks: {', '.join(missing)}")
    return shards


def _layer(kind: str, path: str, got: Downloaded) -> Layer:
    filename = check_filename(PurePosixPath(path).name)
    return Layer(GGUF_LAYER if kind == "gguf" else FILE_LAYER, got.digest, got.size, filename)


def _model_info(layout: StoreLayout, kind: str, layers: list[Layer]) -> dict:
    if kind == "gguf":
        return gguf_model_info(layout.blob_path(layers[0].digest))
    return hf_model_info({l.filename: layout.blob_path(l.digest) for l in layers})


def _roll_back(layout: StoreLayout, added: list[tuple[RemoteFile, Downloaded]]) -> None:
    """Take the blobs this pull added out of `blobs/`: LFS files back to partial/, small files away."""
    for remote, got in added:
        blob = layout.blob_path(got.digest)
        try:
            if remote.sha256:
                os.chmod(blob, 0o644)
                os.replace(blob, layout.partial_path(got.digest))
            else:
                blob.unlink()
        except OSError:
            pass


def _client() -> httpx.Client:
    headers = {"User-Agent": f"corral/{__version__}"}
    token = envs.hf_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    # httpx drops Authorization when a redirect leaves the Hub's origin (e.g. to the CDN).
    return httpx.Client(headers=headers, follow_redirects=True, timeout=httpx.Timeout(30.0, connect=10.0))
