"""Model names: parse, validate and map them to manifest paths.

Three spellings, each stored under its own host folder so they never collide:

- ``qwen2.5:0.5b-q4_k_m``          a local short name (made by ``create`` or ``cp``), host ``local``;
- ``hf.co/ORG/REPO[:QUANT]``       a GGUF repo on the Hub, the tag picks the quantization, host ``hf.co``;
- ``ORG/REPO[:REVISION]``          a safetensors repo on the Hub, host ``huggingface.co``.

A missing tag means ``latest``. Every part is checked so a name can never point outside the
store (no ``..``, no empty parts, no separators, no odd characters).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from corral.errors import StoreError

DEFAULT_TAG = "latest"
LOCAL_HOST = "local"
LOCAL_NAMESPACE = "library"
GGUF_HOST = "hf.co"
HF_HOST = "huggingface.co"
_HUB_ALIASES = {"hf.co": GGUF_HOST, "huggingface.co": GGUF_HOST}

_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_HELP = (
    "use NAME[:TAG] for a local model, hf.co/ORG/REPO[:QUANT] for a GGUF repo on the Hub, "
    "or ORG/REPO for a safetensors repo; parts may hold letters, digits, '.', '_' and '-'"
)


@dataclass(frozen=True)
class ModelName:
    """A validated model name. `str(name)` gives the canonical spelling, tag included."""

    host: str
    namespace: str
    repo: str
    tag: str = DEFAULT_TAG

    @property
    def is_local(self) -> bool:
        return self.host == LOCAL_HOST

    @property
    def hub_repo(self) -> str:
        """`ORG/REPO` on the Hub; only meaningful when not local."""
        return f"{self.namespace}/{self.repo}"

    def manifest_relpath(self) -> PurePosixPath:
        """Where the manifest lives under `manifests/`: host/namespace/repo/tag."""
        return PurePosixPath(self.host, self.namespace, self.repo, self.tag)

    def __str__(self) -> str:
        if self.host == LOCAL_HOST:
            return f"{self.repo}:{self.tag}"
        if self.host == HF_HOST:
            return f"{self.namespace}/{self.repo}:{self.tag}"
        return f"{self.host}/{self.namespace}/{self.repo}:{self.tag}"


def parse_name(text: str) -> ModelName:
    """Parse and validate a model name; raises StoreError saying what is wrong and what is allowed."""
    if not isinstance(text, str) or not text.strip():
        raise StoreError(f"model name is empty; {_HELP}")
    raw = text.strip()
    path, sep, tag = raw.partition(":")
    if sep and not tag:
        raise StoreError(f"model name {raw!r} has an empty tag after ':'; {_HELP}")
    if ":" in tag:
        raise StoreError(f"model name {raw!r} has more than one ':'; {_HELP}")
    tag = tag or DEFAULT_TAG
    if not _TAG.fullmatch(tag) or ".." in tag:
        raise StoreError(f"model name {raw!r} has an invalid tag {tag!r}; {_HELP}")
    parts = path.split("/")
    for part in parts:
        if not part:
            raise StoreError(f"model name {raw!r} has an empty part; {_HELP}")
        if ".." in part or not _PART.fullmatch(part):
            raise StoreError(f"model name {raw!r} has an invalid part {part!r}; {_HELP}")
    if len(parts) == 1:
        return ModelName(LOCAL_HOST, LOCAL_NAMESPACE, parts[0], tag)
    if len(parts) == 2:
        return ModelName(HF_HOST, parts[0], parts[1], tag)
    if len(parts) == 3:
        host = _HUB_ALIASES.get(parts[0].lower())
        if host is None:
            raise StoreError(f"model name {raw!r}: unknown registry {parts[0]!r}; only hf.co is supported")
        return ModelName(host, parts[1], parts[2], tag)
    raise StoreError(f"model name {raw!r} has too many '/' parts; {_HELP}")


def name_from_manifest_relpath(rel: PurePosixPath) -> ModelName | None:
    """Inverse of `manifest_relpath`; None for files that are not manifests of a valid name."""
    if len(rel.parts) != 4:
        return None
    host, namespace, repo, tag = rel.parts
    if host == LOCAL_HOST:
        text = f"{repo}:{tag}" if namespace == LOCAL_NAMESPACE else None
    elif host == HF_HOST:
        text = f"{namespace}/{repo}:{tag}"
    elif host == GGUF_HOST:
        text = f"{host}/{namespace}/{repo}:{tag}"
    else:
        text = None
    if text is None:
        return None
    try:
        return parse_name(text)
    except StoreError:
        return None
