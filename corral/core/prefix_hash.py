"""Chained hashes of full KV blocks, the keys of the prefix cache.

A block's hash covers its own token ids and its parent's hash, so equal hashes mean equal whole
prefixes, not just equal blocks. SHA-256 makes a collision (one prompt reading another's K/V)
infeasible to construct.
"""
from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence

_ROOT = b"corral-kv-v1"


def hash_block(parent_hash: bytes | None, token_ids: Sequence[int]) -> bytes:
    """SHA-256 digest of the parent's digest (or a fixed root) followed by the token ids."""
    h = hashlib.sha256(parent_hash if parent_hash is not None else _ROOT)
    h.update(array("q", token_ids).tobytes())
    return h.digest()


def extend_block_hashes(hashes: list[bytes], token_ids: Sequence[int], block_size: int) -> list[bytes]:
    """Append to `hashes` the hashes of the full blocks of `token_ids` not yet hashed; return it."""
    num_full = len(token_ids) // block_size
    parent = hashes[-1] if hashes else None
    for i in range(len(hashes), num_full):
        parent = hash_block(parent, token_ids[i * block_size:(i + 1) * block_size])
        hashes.append(parent)
    return hashes
