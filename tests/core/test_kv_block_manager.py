"""KV block manager: chained hashes, prefix hits, allocation failure, LRU eviction order."""
from core_fake_runner import make_request

from corral.core.block_manager import KVCacheManager
from corral.core.prefix_hash import extend_block_hashes, hash_block


def test_chained_hash_depends_on_prefix():
    block = [7, 8, 9, 10]
    after_a = hash_block(hash_block(None, [1, 2, 3, 4]), block)
    after_b = hash_block(hash_block(None, [1, 2, 3, 5]), block)
    assert after_a != after_b
    assert after_a == hash_block(hash_block(None, [1, 2, 3, 4]), block)
    assert len(after_a) == 32


def test_extend_block_hashes_covers_full_blocks_only_and_is_incremental():
    tokens = list(range(10))
    hashes = extend_block_hashes([], tokens, 4)
    assert len(hashes) == 2
    first = list(hashes)
    tokens += [10, 11]
    extend_block_hashes(hashes, tokens, 4)
    assert hashes[:2] == first and len(hashes) == 3
    assert hashes == extend_block_hashes([], tokens, 4)


def _compute(kv: KVCacheManager, req, num_tokens: int) -> None:
    """Allocate and mark `num_tokens` more tokens computed, as one scheduler step would."""
    assert kv.allocate_slots(req, num_tokens)
    req.num_computed_tokens += num_tokens
    kv.cache_blocks(req)


def test_hit_never_covers_the_last_token():
    kv = KVCacheManager(num_blocks=8, block_size=4)
    a = make_request("a", list(range(8)))
    _compute(kv, a, 8)
    kv.free(a)
    same = make_request("b", list(range(8)))
    blocks, n = kv.get_computed_blocks(same)
    assert n == 4 and [b.block_id for b in blocks] == kv_ids_of_first(kv, 1, list(range(8)))
    longer = make_request("c", list(range(9)))
    assert kv.get_computed_blocks(longer)[1] == 8


def kv_ids_of_first(kv: KVCacheManager, n: int, tokens: list[int]) -> list[int]:
    hashes = extend_block_hashes([], tokens, kv.block_size)
    return [kv.cached[h].block_id for h in hashes[:n]]


def test_shared_hit_blocks_are_reference_counted():
    kv = KVCacheManager(num_blocks=8, block_size=4)
    a = make_request("a", list(range(9)))
    _compute(kv, a, 9)
    b = make_request("b", list(range(9)))
    hits, n = kv.get_computed_blocks(b)
    assert n == 8
    assert kv.allocate_slots(b, 1, hits)
    assert kv.get_block_ids("a")[:2] == kv.get_block_ids("b")[:2]
    assert kv.get_block_ids("a")[2] != kv.get_block_ids("b")[2]
    assert [blk.ref_cnt for blk in hits] == [2, 2]
    assert kv.num_free_blocks == 8 - 4
    kv.free(a)
    kv.free(b)
    assert kv.num_free_blocks == 8 and kv.usage == 0.0


def test_allocation_failure_changes_nothing():
    kv = KVCacheManager(num_blocks=3, block_size=4)
    a = make_request("a", list(range(20)))
    assert kv.allocate_slots(a, 13) is False
    assert kv.num_free_blocks == 3 and kv.get_block_ids("a") == []
    assert kv.allocate_slots(a, 12)
    assert kv.num_free_blocks == 0 and kv.usage == 1.0


def test_evictable_hits_count_against_free_blocks():
    kv = KVCacheManager(num_blocks=3, block_size=4)
    a = make_request("a", list(range(9)))
    _compute(kv, a, 9)
    kv.free(a)  # 2 cached blocks + 1 plain, all free
    b = make_request("b", list(range(9)) + list(range(100, 108)))
    hits, n = kv.get_computed_blocks(b)
    assert n == 8
    # 17 tokens need 5 blocks: 2 hits + 3 new, but only 1 block is free besides the hits.
    assert kv.allocate_slots(b, 9, hits) is False
    assert kv.num_free_blocks == 3 and all(blk.ref_cnt == 0 for blk in hits)


def _two_cached_prefixes(kv: KVCacheManager):
    a_tokens, b_tokens = list(range(8)), list(range(50, 58))
    a, b = make_request("a", a_tokens), make_request("b", b_tokens)
    _compute(kv, a, 8)
    _compute(kv, b, 8)
    kv.free(a)  # freed first: least recently used, tail block queued before head block
    kv.free(b)
    return a_tokens + [1], b_tokens + [1]


def _hit(kv: KVCacheManager, tokens: list[int]) -> int:
    return kv.get_computed_blocks(make_request("probe", tokens))[1]


def test_eviction_takes_plain_blocks_then_least_recent_tail_first():
    kv = KVCacheManager(num_blocks=6, block_size=4)
    a_next, b_next = _two_cached_prefixes(kv)
    assert kv.allocate_slots(make_request("c", list(range(200, 208))), 8)  # the 2 plain blocks
    assert len(kv.cached) == 4
    assert kv.allocate_slots(make_request("d", list(range(300, 304))), 4)  # a's tail
    assert (_hit(kv, a_next), _hit(kv, b_next)) == (4, 8)
    assert kv.allocate_slots(make_request("e", list(range(400, 404))), 4)  # a's head
    assert (_hit(kv, a_next), _hit(kv, b_next)) == (0, 8)
    assert kv.allocate_slots(make_request("f", list(range(500, 504))), 4)  # b's tail
    assert (_hit(kv, a_next), _hit(kv, b_next)) == (0, 4)


def test_a_hit_makes_blocks_most_recently_used():
    kv = KVCacheManager(num_blocks=6, block_size=4)
    a_next, b_next = _two_cached_prefixes(kv)
    a2 = make_request("a2", a_next)
    hits, n = kv.get_computed_blocks(a2)
    assert n == 8 and kv.allocate_slots(a2, 1, hits)
    kv.free(a2)  # a's blocks are now newer than b's
    assert kv.allocate_slots(make_request("x", list(range(600, 612))), 12)  # 2 plain + b's tail
    assert (_hit(kv, a_next), _hit(kv, b_next)) == (8, 4)


def test_generated_tokens_fill_cacheable_blocks():
    kv = KVCacheManager(num_blocks=4, block_size=4)
    a = make_request("a", [1, 2, 3])
    _compute(kv, a, 3)
    a.append_output_token(4)
    _compute(kv, a, 1)
    assert len(kv.cached) == 1
    assert kv.get_computed_blocks(make_request("b", [1, 2, 3, 4, 5]))[1] == 4


def test_reset_prefix_cache_forgets_hits():
    kv = KVCacheManager(num_blocks=4, block_size=4)
    a = make_request("a", list(range(5)))
    _compute(kv, a, 5)
    kv.reset_prefix_cache()
    assert kv.get_computed_blocks(make_request("b", list(range(5))))[1] == 0
    kv.free(a)
    assert kv.num_free_blocks == 4


def test_disabled_prefix_caching_never_hits():
    kv = KVCacheManager(num_blocks=4, block_size=4, enable_prefix_caching=False)
    a = make_request("a", list(range(5)))
    _compute(kv, a, 5)
    kv.free(a)
    assert kv.get_computed_blocks(make_request("b", list(range(5)))) == ([], 0)


def test_sliding_window_releases_blocks_behind_every_query():
    """Window 6, blocks of 4: a query at position p reads p-5..p, so block 0 (0..3) is needed by the
    query at 8 and by none from 9 on."""
    kv = KVCacheManager(num_blocks=8, block_size=4, sliding_window=6)
    a = make_request("a", list(range(8)))
    _compute(kv, a, 8)
    a.append_output_token(1)
    _compute(kv, a, 1)  # the query at 8 reads 3..8
    assert kv.req_to_blocks["a"][0] is not None and kv.num_held_blocks == 3
    a.append_output_token(2)
    _compute(kv, a, 1)  # the query at 9 reads 4..9
    assert kv.req_to_blocks["a"][0] is None and kv.get_block_ids("a")[0] == 0
    assert kv.num_held_blocks == 2 and kv.num_free_blocks == 6
    kv.free(a)
    assert kv.num_free_blocks == 8 and kv.num_held_blocks == 0


def test_sliding_window_generation_holds_a_bounded_number_of_blocks():
    kv = KVCacheManager(num_blocks=6, block_size=4, sliding_window=8)
    a = make_request("a", list(range(5)))
    _compute(kv, a, 5)
    held = []
    for t in range(200):  # 205 tokens would need 52 blocks without releasing
        a.append_output_token(t % 50)
        _compute(kv, a, 1)
        held.append(kv.num_held_blocks)
    assert max(held) == 3  # ceil((window - 1) / block_size) + 1
    assert len(kv.get_block_ids("a")) == -(-205 // 4)


def test_sliding_window_skips_prefix_hits_behind_the_window():
    kv = KVCacheManager(num_blocks=8, block_size=4, sliding_window=4)
    a = make_request("a", list(range(17)))
    _compute(kv, a, 17)
    kv.free(a)
    b = make_request("b", list(range(17)))
    hits, num_hit = kv.get_computed_blocks(b)
    assert num_hit == 16
    assert kv.allocate_slots(b, 1, hits)  # its query at 16 reads 13..16: only the last hit is taken
    table = kv.req_to_blocks["b"]
    assert table[:3] == [None, None, None] and table[3] is hits[3] and hits[3].ref_cnt == 1
    assert all(h.ref_cnt == 0 for h in hits[:3])
