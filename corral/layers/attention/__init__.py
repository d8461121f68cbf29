"""Attention over a paged KV cache, behind a small backend interface."""
from corral.layers.attention.backend import AttentionBackend, get_backend
from corral.layers.attention.metadata import AttentionMetadata

__all__ = ["AttentionBackend", "AttentionMetadata", "get_backend"]
