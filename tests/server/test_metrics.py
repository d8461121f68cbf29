"""Metrics live in a registry per app and render in the Prometheus text format."""
from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from corral.server.metrics import ServerMetrics


@dataclass
class Stats:
    num_running: int = 2
    num_waiting: int = 1
    kv_cache_usage: float = 0.25


def samples(metrics: ServerMetrics) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_two_servers_in_one_process_do_not_share_metrics():
    one, two = ServerMetrics(lambda: [("m", Stats())]), ServerMetrics()
    one.observe_http("/v1/completions", 200)
    one.observe_first_token("m", 0.02)
    one.observe_finished("m", prompt_tokens=5, generated=3, decode_seconds=0.2)
    s1, s2 = samples(one), samples(two)
    assert s1[("corral_http_requests_total", (("route", "/v1/completions"), ("status", "200")))] == 1
    assert s1[("corral_prompt_tokens_total", (("model", "m"),))] == 5
    assert s1[("corral_generation_tokens_total", (("model", "m"),))] == 3
    assert s1[("corral_time_to_first_token_seconds_count", (("model", "m"),))] == 1
    assert abs(s1[("corral_time_per_output_token_seconds_sum", (("model", "m"),))] - 0.1) < 1e-9
    assert s1[("corral_num_requests_running", (("model", "m"),))] == 2
    assert s1[("corral_num_requests_waiting", (("model", "m"),))] == 1
    assert s1[("corral_kv_cache_usage_ratio", (("model", "m"),))] == 0.25
    assert not any(name == "corral_http_requests_total" for name, _ in s2)
