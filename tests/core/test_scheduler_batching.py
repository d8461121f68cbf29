"""Scheduler: token budget, chunked prefill, decodes never starved, prefix hits, n > 1 sharing."""
import pytest
from core_fake_runner import FakeRunner, make_request, reference_tokens, run_all

from corral.core.scheduler import Scheduler, SchedulerConfig
from corral.errors import ContextLengthError, ValidationError


def make(num_blocks=64, block_size=4, budget=32, max_num_seqs=8, max_model_len=1024, **kw):
    config = SchedulerConfig(num_blocks=num_blocks, block_size=block_size, max_num_batched_tokens=budget,
                             max_num_seqs=max_num_seqs, max_model_len=max_model_len, **kw)
    return Scheduler(config), FakeRunner(num_blocks, block_size)


def step(sched, runner):
    out = sched.schedule()
    sched.update_from_output(out, runner.execute(out))
    return out


def test_long_prompt_is_prefilled_in_budget_sized_chunks():
    sched, runner = make(budget=32)
    sched.add_request(make_request("a", list(range(100)), max_tokens=2))
    chunks = []
    for _ in range(4):
        (s,) = step(sched, runner).scheduled
        chunks.append((s.start_pos, len(s.token_ids), s.sample))
    assert chunks == [(0, 32, False), (32, 32, False), (64, 32, False), (96, 4, True)]
    assert sched.requests["a"].num_output_tokens == 1


def test_decodes_are_not_starved_by_a_long_prefill():
    sched, runner = make(budget=16, num_blocks=128)
    for i in range(3):
        sched.add_request(make_request(f"d{i}", [i + 1, 2, 3], max_tokens=50))
    step(sched, runner)
    sched.add_request(make_request("long", list(range(200)), max_tokens=1))
    for _ in range(10):
        out = step(sched, runner)
        by_id = {s.request_id: len(s.token_ids) for s in out.scheduled}
        assert all(by_id[f"d{i}"] == 1 for i in range(3))
        assert by_id["long"] == 13
        assert out.num_batched_tokens == 16


def test_long_prefill_token_threshold_caps_each_prefill():
    sched, runner = make(budget=32, long_prefill_token_threshold=8)
    sched.add_request(make_request("a", list(range(20)), max_tokens=1))
    sched.add_request(make_request("b", list(range(100, 120)), max_tokens=1))
    out = step(sched, runner)
    assert [(s.request_id, len(s.token_ids)) for s in out.scheduled] == [("a", 8), ("b", 8)]


def test_max_num_seqs_limits_running_requests():
    sched, runner = make(max_num_seqs=2, budget=32)
    for i in range(5):
        sched.add_request(make_request(f"r{i}", [i, 1, 2], max_tokens=3))
    out = step(sched, runner)
    assert len(out.scheduled) == 2 and sched.num_running == 2 and sched.num_waiting == 3
    run_all(sched, runner)
    assert sched.kv_cache.num_free_blocks == sched.config.num_blocks


def test_prefix_cache_hit_computes_only_the_rest():
    sched, runner = make(block_size=16, budget=256)
    shared = list(range(40))
    sched.add_request(make_request("a", shared + [1000 + i for i in range(10)], max_tokens=1))
    run_all(sched, runner)
    sched.add_request(make_request("b", shared + [2000 + i for i in range(10)], max_tokens=1))
    (s,) = step(sched, runner).scheduled
    assert (s.start_pos, len(s.token_ids)) == (32, 18)
    assert sched.prefix_cache_hits == 32
    # The same 48-token prompt again: 3 full blocks cached, but the last token is recomputed.
    sched.add_request(make_request("c", list(range(48)), max_tokens=1))
    sched.add_request(make_request("c2", list(range(48)), max_tokens=1))
    run_all(sched, runner)
    sched.add_request(make_request("d", list(range(48)), max_tokens=1))
    (s,) = step(sched, runner).scheduled
    assert (s.start_pos, len(s.token_ids)) == (32, 16)


def test_prefix_hit_tokens_match_uncached_generation():
    sched, runner = make(block_size=4, budget=64)
    prompt = list(range(30))
    requests = [make_request(f"r{i}", prompt, max_tokens=12) for i in range(3)]
    for r in requests:
        sched.add_request(r)
        run_all(sched, runner)
    expected, _ = reference_tokens(prompt, 12, 1024)
    assert all(r.output_token_ids == expected for r in requests)
    assert [r.num_cached_tokens for r in requests] == [0, 28, 28]


def test_n_samples_of_one_prompt_share_its_blocks():
    """The first child computes the prompt; the others wait one step and then hit its blocks."""
    sched, runner = make(block_size=16, budget=256, num_blocks=32)
    prompt = list(range(40))
    children = [make_request(f"c{i}", prompt, max_tokens=4) for i in range(4)]
    for c in children:
        sched.add_request(c)
    first = step(sched, runner)
    assert [(s.request_id, len(s.token_ids)) for s in first.scheduled] == [("c0", 40)]
    second = step(sched, runner)
    assert [(s.request_id, s.start_pos, len(s.token_ids)) for s in second.scheduled] == [
        ("c0", 40, 1), ("c1", 32, 8), ("c2", 32, 8), ("c3", 32, 8)]
    tables = [s.block_ids for s in second.scheduled]
    assert all(t[:2] == tables[0][:2] for t in tables)
    assert sched.kv_cache.num_free_blocks == 32 - (2 + 4 * 1)
    run_all(sched, runner)
    assert [c.num_cached_tokens for c in children] == [0, 32, 32, 32]
    assert len({tuple(c.output_token_ids) for c in children}) == 1


def test_too_long_prompts_are_rejected_at_once():
    sched, _ = make(num_blocks=8, block_size=4, max_model_len=64)
    with pytest.raises(ContextLengthError, match="context"):
        sched.add_request(make_request("a", list(range(64))))
    with pytest.raises(ContextLengthError, match="KV cache"):
        sched.add_request(make_request("b", list(range(32))))
    with pytest.raises(ValidationError):
        sched.add_request(make_request("c", []))
    assert not sched.has_unfinished_requests()
    sched.add_request(make_request("d", list(range(31))))  # 31 + 1 fits the 32-slot cache
    with pytest.raises(ValidationError, match="already"):
        sched.add_request(make_request("d", [1]))


def test_config_needs_room_for_one_decode_per_sequence():
    with pytest.raises(ValidationError):
        SchedulerConfig(num_blocks=8, max_model_len=64, max_num_seqs=16, max_num_batched_tokens=8)
