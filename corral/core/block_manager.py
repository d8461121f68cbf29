"""Paged KV cache bookkeeping: block tables, reference counts and the prefix cache.

Semantics follow vLLM v1. Each request owns a block table (list of blocks); position `p` of a
request lives in slot `table[p // block_size] * block_size + p % block_size`. Full blocks whose
tokens are computed are registered under their chained hash; a later request with the same
prefix takes those blocks (ref_cnt + 1) instead of recomputing them. Blocks whose ref_cnt drops
to 0 go to the free queue but keep their hash until evicted, least recently used first.

With a sliding window over every layer (Mistral, Phi-3), a position older than the window of the
next query is never read again: the blocks wholly before it go back to the free queue as the
request advances, and its table holds None there (`get_block_ids` gives block 0 for them, which
no attention reads), so a long generation holds about window / block_size blocks. A model with
any global layer (Gemma 2 and 3) keeps every block.
"""
from __future__ import annotations

from corral.core.block_pool import FreeBlockQueue, KVBlock
from corral.core.prefix_hash import extend_block_hashes
from corral.core.request import Request


def blocks_held_under_window(window: int, max_step_tokens: int, block_size: int) -> int:
    """The most blocks one request holds at once when blocks behind `window` are released: a step's
    chunk of up to `max_step_tokens` and the window - 1 positions before its first query."""
    return (window + max_step_tokens - 2) // block_size + 2


class KVCacheManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True,
                 sliding_window: int | None = None):
        """`sliding_window`: the window of every layer, when every layer has one (None otherwise)."""
        if num_blocks < 1 or block_size < 1 or (sliding_window is not None and sliding_window < 1):
            raise ValueError(f"need num_blocks >= 1, block_size >= 1 and a window of None or >= 1, got "
                             f"{num_blocks}, {block_size}, {sliding_window}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.sliding_window = sliding_window
        self.blocks = [KVBlock(i) for i in range(num_blocks)]
        self.free_queue = FreeBlockQueue(self.blocks)
        self.cached: dict[bytes, KVBlock] = {}  # block hash -> the one block registered under it
        self.req_to_blocks: dict[str, list[KVBlock | None]] = {}  # None: out of the window, released
        self.num_cached_blocks: dict[str, int] = {}  # leading blocks of a table already registered

    @property
    def num_free_blocks(self) -> int:
        """Blocks no request holds (cached-but-evictable blocks count as free)."""
        return len(self.free_queue)

    @property
    def usage(self) -> float:
        """Fraction of blocks held by requests, in [0, 1]."""
        return 1.0 - len(self.free_queue) / self.num_blocks

    def get_block_ids(self, request_id: str) -> list[int]:
        """The request's block ids in position order; 0 stands in for released out-of-window blocks."""
        return [0 if b is None else b.block_id for b in self.req_to_blocks.get(request_id, ())]

    @property
    def num_held_blocks(self) -> int:
        """Blocks some request's table holds (a block shared by several counts once)."""
        return len({b.block_id for table in self.req_to_blocks.values() for b in table if b is not None})

    def block_hashes(self, request: Request) -> list[bytes]:
        """The request's full-block hashes, extended to cover all its known tokens."""
        return extend_block_hashes(request.block_hashes, request.all_token_ids, self.block_size)

    def get_computed_blocks(self, request: Request) -> tuple[list[KVBlock], int]:
        """Longest cached prefix of the request, in full blocks, and its length in tokens.

        Never covers the last known token: it must be computed so the model yields logits.
        Does not take the blocks; pass them to `allocate_slots` in the same step.
        """
        if not self.enable_prefix_caching:
            return [], 0
        hashes = self.block_hashes(request)
        max_blocks = (request.num_tokens - 1) // self.block_size
        hits: list[KVBlock] = []
        for block_hash in hashes[:max_blocks]:
            block = self.cached.get(block_hash)
            if block is None:
                break
            hits.append(block)
        return hits, len(hits) * self.block_size

    def allocate_slots(
        self, request: Request, num_new_tokens: int, new_computed_blocks: list[KVBlock] = ()
    ) -> bool:
        """Make room for `num_new_tokens` after the computed ones; False (nothing allocated) if short.

        `new_computed_blocks` are prefix-cache hits from `get_computed_blocks` for a request
        with no computed tokens yet; they join the front of its block table. With a sliding
        window, blocks the step's first query is already past are released first (even when the
        answer is False: no later step reads them either), and hits that far back are not taken.
        """
        table = self.req_to_blocks.get(request.request_id, [])
        num_computed = request.num_computed_tokens + len(new_computed_blocks) * self.block_size
        num_required = -(-(num_computed + num_new_tokens) // self.block_size)
        num_new_blocks = num_required - len(table) - len(new_computed_blocks)
        first_needed = self._first_needed_block(num_computed)
        self._release_before(table, first_needed)
        taken_hits = new_computed_blocks[max(0, first_needed - len(table)):]
        # Hits sitting in the free queue leave it when taken, so they can't also be handed out.
        num_evictable_hits = sum(1 for b in taken_hits if b.ref_cnt == 0)
        if num_new_blocks > len(self.free_queue) - num_evictable_hits:
            return False
        table.extend([None] * (len(new_computed_blocks) - len(taken_hits)))
        for block in taken_hits:
            if block.ref_cnt == 0:
                self.free_queue.remove(block)
            block.ref_cnt += 1
            table.append(block)
        for _ in range(num_new_blocks):
            table.append(self._take_free_block())
        self.req_to_blocks[request.request_id] = table
        if new_computed_blocks:
            self.num_cached_blocks[request.request_id] = len(new_computed_blocks)
        return True

    def cache_blocks(self, request: Request) -> None:
        """Register the request's newly full, computed blocks in the prefix cache.

        Call after `request.num_computed_tokens` advanced. If another block already holds the
        same hash, this one stays unregistered (a duplicate) and is reused first once freed.
        """
        if not self.enable_prefix_caching:
            return
        rid = request.request_id
        table = self.req_to_blocks.get(rid)
        if table is None:
            return
        num_full = min(request.num_computed_tokens, request.num_tokens) // self.block_size
        start = self.num_cached_blocks.get(rid, 0)
        if num_full <= start:
            return
        hashes = self.block_hashes(request)
        for i in range(start, num_full):
            block = table[i]
            if block is not None and block.block_hash is None and hashes[i] not in self.cached:
                block.block_hash = hashes[i]
                self.cached[hashes[i]] = block
        self.num_cached_blocks[rid] = num_full

    def free(self, request: Request) -> None:
        """Drop the request's hold on its blocks, tail first, so tail blocks are evicted first."""
        table = self.req_to_blocks.pop(request.request_id, [])
        self.num_cached_blocks.pop(request.request_id, None)
        for block in reversed(table):
            if block is not None:
                self._release(block)

    def reset_prefix_cache(self) -> None:
        """Forget every cached prefix (e.g. after weights change); held blocks stay allocated."""
        for block in self.cached.values():
            block.block_hash = None
        self.cached.clear()

    def _first_needed_block(self, num_computed: int) -> int:
        """Index of the first block a query at position `num_computed` (or later) still reads."""
        if self.sliding_window is None:
            return 0
        return max(0, num_computed - self.sliding_window + 1) // self.block_size

    def _release_before(self, table: list[KVBlock | None], end: int) -> None:
        """Release the blocks of table[:end], leaving None in their places."""
        for i in range(min(end, len(table))):
            if table[i] is not None:
                self._release(table[i])
                table[i] = None

    def _release(self, block: KVBlock) -> None:
        block.ref_cnt -= 1
        if block.ref_cnt == 0:
            if block.block_hash is None:
                self.free_queue.append_front(block)
            else:
                self.free_queue.append(block)

    def _take_free_block(self) -> KVBlock:
        block = self.free_queue.pop_front()
        if block.block_hash is not None:
            del self.cached[block.block_hash]
            block.block_hash = None
        block.ref_cnt = 1
        return block
