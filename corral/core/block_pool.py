"""KV blocks and the queue of free ones.

A free block may still hold a cached prefix (its `block_hash` is set): it can be taken back by a
request that hits the cache, or evicted for a new allocation. The queue keeps eviction order:
the front is evicted first. Removal from any position is O(1) (an OrderedDict keyed by block id).
"""
from __future__ import annotations

from collections import OrderedDict


class KVBlock:
    """One block of `block_size` token slots in every layer's K/V tensors."""

    __slots__ = ("block_id", "ref_cnt", "block_hash")

    def __init__(self, block_id: int):
        self.block_id = block_id
        self.ref_cnt = 0  # number of requests whose block table holds this block
        self.block_hash: bytes | None = None  # set while registered in the prefix cache

    def __repr__(self) -> str:
        cached = "cached" if self.block_hash is not None else "plain"
        return f"KVBlock({self.block_id}, ref={self.ref_cnt}, {cached})"


class FreeBlockQueue:
    """Blocks with ref_cnt == 0, front = evicted first (least recently used, or worthless)."""

    def __init__(self, blocks: list[KVBlock]):
        self._queue: OrderedDict[int, KVBlock] = OrderedDict((b.block_id, b) for b in blocks)

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, block: KVBlock) -> bool:
        return block.block_id in self._queue

    def __iter__(self):
        return iter(self._queue.values())

    def pop_front(self) -> KVBlock:
        return self._queue.popitem(last=False)[1]

    def remove(self, block: KVBlock) -> None:
        del self._queue[block.block_id]

    def append(self, block: KVBlock) -> None:
        """Add at the back: evicted after every block already queued."""
        self._queue[block.block_id] = block

    def append_front(self, block: KVBlock) -> None:
        """Add at the front: the next block handed out (for blocks holding nothing reusable)."""
        self._queue[block.block_id] = block
        self._queue.move_to_end(block.block_id, last=False)
