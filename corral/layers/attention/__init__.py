"""Attention over a paged KV cache, behind a small backend interface."""
from corral.layers.attention.backend import AttentionBackend
from corral.layers.attention.metadata import AttentionMetadata
from corral.layers.attention.registry import BACKEND_NAMES, get_backend, resolve_backend_name

__all__ = ["BACKEND_NAMES", "AttentionBackend", "AttentionMetadata", "get_backend", "resolve_backend_name"]
