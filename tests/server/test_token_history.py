"""The server's token-rate history: rates per interval from the engines' own counters, engines
told apart so loads and unloads never count a whole total again, samples older than the window gone."""
from __future__ import annotations

from corral.server.token_history import TokenHistory


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rates_follow_each_engines_counter_across_loads_and_unloads():
    clock = Clock()
    history = TokenHistory(window_s=10, interval_s=2, clock=clock)
    a, b = object(), object()
    history.sample([(a, 100)])  # the baseline: no rate yet
    assert history.rates() == []
    clock.now += 2
    history.sample([(a, 120)])
    clock.now += 2
    history.sample([(a, 130), (b, 8)])  # b loaded within this interval: its 8 tokens count once
    clock.now += 2
    history.sample([(b, 12)])  # a unloaded: its total leaving is no negative rate
    assert [p["tps"] for p in history.rates()] == [10.0, 9.0, 2.0]
    clock.now += 7
    history.sample([(b, 12)])
    assert [p["tps"] for p in history.rates()] == [9.0, 2.0, 0.0]  # the one at 1002 s is older than 10 s: gone
