"""Prometheus metrics for one server, in a registry of its own (two apps in a process never collide).

Counters and histograms are updated as requests run; engine gauges (running and waiting requests,
KV cache usage) are read from every loaded engine's `stats()` when /metrics is scraped.
"""
from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class EngineGauges(Collector):
    """Reads (model name, EngineStats) pairs at scrape time."""

    def __init__(self, engines: Callable[[], Iterable[tuple[str, object]]]):
        self.engines = engines

    def collect(self):
        running = GaugeMetricFamily("corral_num_requests_running", "Requests being generated", labels=["model"])
        waiting = GaugeMetricFamily("corral_num_requests_waiting", "Requests queued for the engine", labels=["model"])
        kv = GaugeMetricFamily("corral_kv_cache_usage_ratio", "Fraction of KV cache blocks in use (0..1)", labels=["model"])
        for name, stats in self.engines():
            running.add_metric([name], stats.num_running)
            waiting.add_metric([name], stats.num_waiting)
            kv.add_metric([name], stats.kv_cache_usage)
        yield from (running, waiting, kv)


class ServerMetrics:
    def __init__(self, engines: Callable[[], Iterable[tuple[str, object]]] = lambda: ()):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("corral_http_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.prompt_tokens = Counter("corral_prompt_tokens", "Prompt tokens processed", ["model"], registry=r)
        self.generation_tokens = Counter("corral_generation_tokens", "Tokens generated", ["model"], registry=r)
        self.ttft = Histogram(
            "corral_time_to_first_token_seconds", "From request to first token", ["model"], buckets=TTFT_BUCKETS, registry=r
        )
        self.tpot = Histogram(
            "corral_time_per_output_token_seconds", "Mean gap between output tokens of a request", ["model"],
            buckets=TPOT_BUCKETS, registry=r,
        )
        r.register(EngineGauges(engines))

    def observe_http(self, route: str, status: int) -> None:
        self.requests.labels(route=route, status=str(status)).inc()

    def observe_first_token(self, model: str, seconds: float) -> None:
        self.ttft.labels(model=model).observe(seconds)

    def observe_finished(self, model: str, prompt_tokens: int, generated: int, decode_seconds: float) -> None:
        """A generation ended: count its tokens; `decode_seconds` runs from first to last token."""
        self.prompt_tokens.labels(model=model).inc(prompt_tokens)
        self.generation_tokens.labels(model=model).inc(generated)
        if generated > 1:
            self.tpot.labels(model=model).observe(decode_seconds / (generated - 1))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HttpMetricsMiddleware:
    """Pure ASGI middleware (does not buffer streams) counting responses by route template and status."""

    def __init__(self, app, metrics: ServerMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def send_and_record(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            self.metrics.observe_http(getattr(route, "path", "other"), status)
