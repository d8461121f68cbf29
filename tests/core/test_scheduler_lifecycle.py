"""Scheduler: stop conditions, abort, preemption under a tiny cache, and a leak-hunting soak."""
import random

from core_fake_runner import VOCAB, FakeRunner, check_invariants, make_request, reference_tokens, run_all

from corral.core.request import RequestStatus
from corral.core.scheduler import Scheduler, SchedulerConfig


def make(num_blocks=64, block_size=4, budget=32, max_num_seqs=8, max_model_len=1024, **kw):
    config = SchedulerConfig(num_blocks=num_blocks, block_size=block_size, max_num_batched_tokens=budget,
                             max_num_seqs=max_num_seqs, max_model_len=max_model_len, **kw)
    return Scheduler(config), FakeRunner(num_blocks, block_size)


def finish_with(tokens, **params):
    """Run one request whose 'model' emits `tokens` in order; return it."""
    sched = Scheduler(SchedulerConfig(num_blocks=16, block_size=4, max_model_len=params.pop("max_model_len", 64)))
    req = make_request("r", [1, 2, 3], **params)
    sched.add_request(req)
    feed = iter(tokens)
    while sched.has_unfinished_requests():
        out = sched.schedule()
        sched.update_from_output(out, {s.request_id: [next(feed)] for s in out.scheduled if s.sample})
    assert sched.kv_cache.num_free_blocks == 16
    return req


def test_stop_conditions():
    r = finish_with([5, 9, 0], eos=frozenset({0}), max_tokens=10)
    assert (r.output_token_ids, r.finish_reason, r.stop_reason, r.status) == (
        [5, 9, 0], "stop", None, RequestStatus.FINISHED_STOPPED)
    r = finish_with([0, 0, 7, 0], eos=frozenset({0}), min_tokens=3, max_tokens=10)
    assert (r.output_token_ids, r.finish_reason) == ([0, 0, 7, 0], "stop")
    r = finish_with([0, 0, 0], eos=frozenset({0}), ignore_eos=True, max_tokens=3)
    assert (r.output_token_ids, r.finish_reason) == ([0, 0, 0], "length")
    r = finish_with([4, 42, 5], stop_token_ids=[42], max_tokens=10)
    assert (r.output_token_ids, r.finish_reason, r.stop_reason) == ([4, 42], "stop", 42)
    r = finish_with([1] * 20, max_tokens=None, max_model_len=8)
    assert (r.num_tokens, r.finish_reason, r.status) == (8, "length", RequestStatus.FINISHED_LENGTH)
    r = finish_with([1, 2, 0], eos=frozenset({0}), max_tokens=3)
    assert r.finish_reason == "stop"  # a stop token wins over a length limit on the same token


def test_generation_stops_when_the_cache_is_full():
    sched, runner = make(num_blocks=4, block_size=4, max_model_len=1024)
    req = make_request("r", [1, 2, 3], max_tokens=None)
    sched.add_request(req)
    run_all(sched, runner)
    assert (req.num_tokens, req.finish_reason) == (16, "length")


def test_finish_request_for_a_stop_string_and_finished_ids_reach_the_runner():
    sched, runner = make()
    req = make_request("r", [1, 2, 3], max_tokens=10)
    sched.add_request(req)
    out = sched.schedule()
    changed = sched.update_from_output(out, runner.execute(out))
    assert changed == [req] and req.num_output_tokens == 1
    assert sched.finish_request("r", "stop", stop_reason="\n\n") is req
    assert (req.finish_reason, req.stop_reason) == ("stop", "\n\n")
    assert sched.kv_cache.num_free_blocks == sched.config.num_blocks
    assert sched.schedule().finished_request_ids == {"r"}
    assert sched.schedule().finished_request_ids == set()


def test_abort_mid_generation_frees_every_block():
    sched, runner = make(num_blocks=32, block_size=4)
    for i in range(3):
        sched.add_request(make_request(f"r{i}", [i] * 10, max_tokens=50))
    for _ in range(5):
        out = sched.schedule()
        sched.update_from_output(out, runner.execute(out))
    assert sched.num_running == 3 and sched.kv_usage > 0
    aborted = sched.abort_request("r1")
    assert aborted.status == RequestStatus.FINISHED_ABORTED and aborted.finish_reason == "abort"
    assert sched.abort_request("r1") is None and sched.abort_request("nope") is None
    check_invariants(sched)
    assert sched.kv_cache.get_block_ids("r1") == []
    sched.abort_request("r0")
    sched.abort_request("r2")
    assert sched.kv_cache.num_free_blocks == 32 and not sched.has_unfinished_requests()
    assert sched.kv_usage == 0.0


def test_abort_between_schedule_and_update_is_ignored():
    sched, runner = make()
    sched.add_request(make_request("a", [1, 2, 3], max_tokens=5))
    sched.add_request(make_request("b", [4, 5, 6], max_tokens=5))
    out = sched.schedule()
    sampled = runner.execute(out)
    sched.abort_request("a")
    changed = sched.update_from_output(out, sampled)
    assert [r.request_id for r in changed] == ["b"]


def _prompts(rng, n, lo=3, hi=40):
    base = [rng.randrange(VOCAB) for _ in range(24)]
    return [base[:rng.randrange(0, 24)] + [rng.randrange(VOCAB) for _ in range(rng.randint(lo, hi))]
            for _ in range(n)]


def test_preemption_under_a_tiny_cache_gives_the_same_tokens():
    rng = random.Random(0)
    prompts = _prompts(rng, 12)
    max_tokens = [rng.randint(5, 40) for _ in prompts]
    results = {}
    for num_blocks in (1000, 24):
        sched, runner = make(num_blocks=num_blocks, block_size=4, budget=48, max_num_seqs=8)
        reqs = [make_request(f"r{i}", p, max_tokens=m) for i, (p, m) in enumerate(zip(prompts, max_tokens))]
        for r in reqs:
            sched.add_request(r)
        outs = run_all(sched, runner)
        assert sched.kv_cache.num_free_blocks == num_blocks
        results[num_blocks] = ([r.output_token_ids for r in reqs], sum(len(o.preempted_request_ids) for o in outs))
    assert results[1000][1] == 0 and results[24][1] > 0
    assert results[24][0] == results[1000][0]
    for p, m, got in zip(prompts, max_tokens, results[24][0]):
        assert got == reference_tokens(p, m, 1024)[0]


def test_soak_mixed_requests_leak_nothing():
    rng = random.Random(1)
    sched, runner = make(num_blocks=40, block_size=4, budget=24, max_num_seqs=6, max_model_len=96)
    eos = frozenset({0})
    pending = [(f"r{i}", p, rng.randint(1, 30), rng.random() < 0.3)
               for i, p in enumerate(_prompts(rng, 300, lo=1, hi=60))]
    live, done = {}, []
    steps = 0
    while pending or sched.has_unfinished_requests():
        for _ in range(rng.randint(0, 3)):
            if pending:
                rid, prompt, max_tokens, use_eos = pending.pop()
                req = make_request(rid, prompt, max_tokens=max_tokens, eos=eos if use_eos else frozenset(),
                                   stop_token_ids=[7] if rng.random() < 0.2 else [])
                sched.add_request(req)
                live[rid] = req
        if live and rng.random() < 0.05:
            victim = rng.choice(sorted(live))
            sched.abort_request(victim)
        if live and rng.random() < 0.03:
            sched.finish_request(rng.choice(sorted(live)), "stop", stop_reason="</s>")
        out = sched.schedule()
        assert out.num_batched_tokens <= 24
        sched.update_from_output(out, runner.execute(out))
        check_invariants(sched)
        for rid in [rid for rid, r in live.items() if r.is_finished]:
            done.append(live.pop(rid))
        steps += 1
        assert steps < 50_000
    kv = sched.kv_cache
    assert kv.num_free_blocks == 40 and all(b.ref_cnt == 0 for b in kv.blocks)
    assert not kv.req_to_blocks and not kv.num_cached_blocks
    assert len(done) == 300 and sched.num_preemptions > 0
    natural = [r for r in done if r.finish_reason == "length" or (r.finish_reason == "stop" and r.stop_reason != "</s>")]
    assert len(natural) > 150
    for r in natural:
        params = r.sampling_params
        expected = reference_tokens(r.prompt_token_ids, params.max_tokens, 96, r.eos_token_ids,
                                    tuple(params.stop_token_ids))
        assert (r.output_token_ids, r.finish_reason) == expected
