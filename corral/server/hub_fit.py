"""The KV cache size per token of a model still on the Hub, for Discover's fit hint.

A GGUF repo: the start of one of its files, read with HTTP range requests (through
`huggingface_hub`'s session, at HF_ENDPOINT with HF_TOKEN), parsed as GGUF metadata (layers, KV
heads, head size, context length); every quantization of a repo shares those, and only the cache
type (float16 for quantized weights, float32 for F32/F16/BF16 files) differs. A safetensors repo:
its config.json. Anything unreadable only loses the estimate's KV part (None), never the listing.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from corral import envs
from corral.loader.gguf_header import parse_metadata_prefix
from corral.server import fit
from corral.store.hub import RepoListing

log = logging.getLogger("corral.server")
FIRST_READ = 256 << 10  # bytes: the model's shape keys come before the vocabulary
MAX_READ = 16 << 20  # give up on a header whose shape keys lie further in
MAX_CONFIG = 4 << 20
TIMEOUT_S = 15.0


def _read_start(listing: RepoListing, path: str, n: int) -> bytes:
    """The first `n` bytes of `path` (fewer if the file is shorter); stops reading at `n` even if
    the server ignores the Range header and sends the whole file."""
    from huggingface_hub import get_session
    from huggingface_hub.utils import build_hf_headers

    headers = {**build_hf_headers(token=envs.hf_token()), "Range": f"bytes=0-{n - 1}"}
    got = bytearray()
    with get_session().stream("GET", listing.resolve_url(path), headers=headers, timeout=TIMEOUT_S,
                              follow_redirects=True) as response:
        if response.status_code not in (200, 206):
            raise OSError(f"the Hub answered {response.status_code} for {path}")
        for chunk in response.iter_bytes():
            got += chunk
            if len(got) >= n:
                break
    return bytes(got[:n])


def gguf_shape(listing: RepoListing, path: str) -> dict[str, Any] | None:
    """The metadata at the start of the remote GGUF file `path` that holds the model's shape,
    reading more while it is cut off before those keys; None when it is no readable GGUF."""
    n = FIRST_READ
    while True:
        data = _read_start(listing, path, n)
        metadata, complete = parse_metadata_prefix(data)
        if fit.gguf_kv_from_metadata(metadata) is not None or complete or len(data) < n or n >= MAX_READ:
            return metadata
        n *= 4


def read_gguf_metadata(listing: RepoListing, path: str) -> dict[str, Any] | None:
    """`gguf_shape`, tolerant: None when the file cannot be read or is no GGUF (the hint then
    counts the weights only, and says so)."""
    try:
        return gguf_shape(listing, path)
    except Exception as e:  # HeaderError, OSError, the HTTP client's own errors: only the KV part is lost
        log.info("no GGUF header for %s/%s: %s", listing.repo, path, e)
        return None


def context_length(metadata: dict[str, Any] | None) -> int | None:
    """The context the model was trained for, as its GGUF metadata states."""
    if not metadata:
        return None
    value = metadata.get(f"{metadata.get('general.architecture')}.context_length")
    return int(value) if isinstance(value, int) else None


def kv_for_quant(metadata: dict[str, Any] | None, quant: str) -> int | None:
    """K+V bytes per token for the repo's `quant` file, from the shape read off one of its files
    (the cache is float32 for F32/F16/BF16 files, float16 for quantized ones)."""
    if not metadata:
        return None
    quant = quant.upper()
    if quant in fit.DENSE_QUANTS:
        file_type: Any = fit.DENSE_QUANTS[quant]
    elif quant and quant != "?":
        file_type = "quantized"
    else:
        file_type = "from metadata"
    return fit.gguf_kv_from_metadata(metadata, file_type)


def folder_kv_per_token(listing: RepoListing) -> int | None:
    """K+V bytes per token of a safetensors repo, from its config.json; None when unreadable."""
    try:
        config = json.loads(_read_start(listing, "config.json", MAX_CONFIG))
        return fit.hf_kv_from_config(config)
    except Exception as e:  # tolerant: a missing or odd config only loses the KV part
        log.info("no usable config.json in %s: %s", listing.repo, e)
        return None
