"""The local model store: pull from the Hugging Face Hub, list, show, copy, remove, create.

Models live under `CORRAL_HOME` (default ~/.corral) as content-addressed blobs plus one JSON
manifest per name. Every function takes `home=` to use another root (tests, tools).

    resolve(name_or_path) -> ResolvedModel        a .gguf path, an HF folder, or a store name
    pull(name, on_progress=None) -> ModelEntry    hf.co/ORG/REPO[:QUANT] or ORG/REPO
    create(name, modelfile_text, base_dir) -> ModelEntry
    list_models() -> list[ModelEntry]; show(name) -> ModelInfo
    copy(src, dst, force=False); remove(name); verify(name)
"""
from __future__ import annotations

from corral.store.catalog import ModelEntry, copy, list_models, remove, verify
from corral.store.create import create
from corral.store.modelfile import Modelfile, parse_modelfile
from corral.store.names import ModelName, parse_name
from corral.store.progress import ProgressCallback, ProgressEvent
from corral.store.pull import pull
from corral.store.resolve import ResolvedModel, resolve
from corral.store.show import ModelInfo, show

__all__ = [
    "ModelEntry", "ModelInfo", "ModelName", "Modelfile", "ProgressCallback", "ProgressEvent",
    "ResolvedModel", "copy", "create", "list_models", "parse_modelfile", "parse_name", "pull",
    "remove", "resolve", "show", "verify",
]
