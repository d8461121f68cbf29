"""ThreadChoice: decode steps keep every thread while they run at their usual speed, drop one when
another process holding a core slows them (and one thread fewer is faster), and take it back once
the other process stops."""
from __future__ import annotations

from corral.engine.thread_choice import COOLDOWN, RECHECK, ThreadChoice


def _run(choice: ThreadChoice, steps: int, times: dict[int, float], t: int = 1, most: int = 2) -> list[int]:
    """`steps` steps of t tokens taking times[threads] seconds; the thread counts used."""
    used = []
    for _ in range(steps):
        n = choice.pick(t, most)
        choice.record(t, n, most, times[n])
        used.append(n)
    return used


def test_steady_steps_never_leave_all_threads():
    choice = ThreadChoice()
    assert set(_run(choice, 500, {2: 0.008, 1: 0.014})) == {2}


def test_a_busy_core_moves_to_fewer_threads_and_back_when_it_frees():
    choice = ThreadChoice()
    _run(choice, 50, {2: 0.008, 1: 0.014})
    # another process on one core: two threads stall (25 ms), one runs steadily (14 ms)
    busy = _run(choice, COOLDOWN + 20, {2: 0.025, 1: 0.014})
    assert busy[-10:] == [1] * 10
    # the other process stops: the next recheck finds two threads faster again
    free = _run(choice, RECHECK + 20, {2: 0.008, 1: 0.014})
    assert free[-10:] == [2] * 10


def test_a_slowdown_that_fewer_threads_do_not_fix_keeps_all_threads():
    choice = ThreadChoice()
    _run(choice, 50, {2: 0.008, 1: 0.014})
    # everything slower (a hot machine): one thread is slower still
    used = _run(choice, 10 * COOLDOWN, {2: 0.016, 1: 0.030})
    assert used[-5:] == [2] * 5 and used.count(1) <= 3 * 10


def test_batch_sizes_are_judged_apart_and_one_thread_machines_are_left_alone():
    choice = ThreadChoice()
    _run(choice, 50, {2: 0.008, 1: 0.014}, t=1)
    # a larger batch is slower per step by nature: not a slowdown
    assert set(_run(choice, 200, {2: 0.040, 1: 0.075}, t=16)) == {2}
    assert set(_run(ThreadChoice(), 50, {1: 0.01}, most=1)) == {1}


def test_a_costly_recheck_stops_at_its_first_step():
    choice = ThreadChoice()
    _run(choice, 50, {2: 0.008, 1: 0.014})
    _run(choice, COOLDOWN + 20, {2: 0.025, 1: 0.014})
    # still busy, and two threads now stall for a second a step: a recheck costs one such step
    used = _run(choice, RECHECK + 10, {2: 1.0, 1: 0.014})
    assert used.count(2) == 1 and used[-1] == 1


def test_steps_that_slow_down_gradually_as_sequences_grow_keep_all_threads():
    choice = ThreadChoice()
    used = []
    for i in range(2000):  # 8 ms growing to 24 ms over 2000 steps (long contexts)
        n = choice.pick(1, 2)
        choice.record(1, n, 2, (0.008 + 0.016 * i / 2000) * (1.8 if n == 1 else 1.0))
        used.append(n)
    assert set(used) == {2}
