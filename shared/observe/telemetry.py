"""Prometheus instruments, one registry per app instance.

A registry per instance (not the process-global one) keeps the embedded run,
where four services share a process, from mixing their figures, and keeps
import free of side effects.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class HttpStats(Collector):
    """Request counts and latencies, kept in plain dicts and turned into Prometheus
    families only when scraped.

    prometheus_client's Counter and Histogram take a lock on every update; on an
    event loop (one thread) that is pure overhead on every request.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], int] = {}
        # Of those, answered by a service's fast path before routing.
        self._fast: dict[tuple[str, str, int], int] = {}
        # (method, route) -> [count per bucket..., +Inf count, sum of seconds]
        self._latencies: dict[tuple[str, str], list[float]] = {}

    def observe(
        self, method: str, route: str, status: int, seconds: float, *, fast_path: bool = False
    ) -> None:
        key = (method, route, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        if fast_path:
            self._fast[key] = self._fast.get(key, 0) + 1
        buckets = self._latencies.get((method, route))
        if buckets is None:
            buckets = self._latencies[(method, route)] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        buckets[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "http_requests",
            "HTTP requests answered, by route template and status",
            labels=["method", "route", "status"],
        )
        for (method, route, status), count in list(self._counts.items()):
            requests.add_metric([method, route, str(status)], count)
        yield requests
        fast = CounterMetricFamily(
            "http_fast_path_answers",
            "Of those, answered by the service's fast path, before routing",
            labels=["method", "route", "status"],
        )
        for (method, route, status), count in list(self._fast.items()):
            fast.add_metric([method, route, str(status)], count)
        yield fast
        latency = HistogramMetricFamily(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            labels=["method", "route"],
        )
        for (method, route), buckets in list(self._latencies.items()):
            cumulative: list[tuple[str, float]] = []
            running = 0.0
            bounds = [*map(str, LATENCY_BUCKETS), "+Inf"]
            for bound, in_bucket in zip(bounds, buckets[:-1], strict=True):
                running += in_bucket
                cumulative.append((bound, running))
            latency.add_metric([method, route], cumulative, buckets[-1])
        yield latency


@dataclass
class Telemetry:
    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.http = HttpStats()
        r.register(self.http)
        self.outbox_pending = Gauge(
            "outbox_pending_events", "Events committed but not yet published", registry=r
        )
        self.outbox_published = Counter(
            "outbox_published_events", "Events the relay published to SNS", registry=r
        )
        self.outbox_publish_failures = Counter(
            "outbox_publish_failures",
            "Relay attempts that SNS refused or could not take",
            registry=r,
        )
        self.redis_circuit_open = Gauge(
            "redis_circuit_open",
            "1 while this process is not calling Redis (it failed a moment ago)",
            registry=r,
        )
        self.redis_mirror_synced = Gauge(
            "redis_mirror_synced",
            "1 when an in-process mirror of Redis state is complete and subscribed",
            ["mirror"],
            registry=r,
        )
        self.consumer_messages = Counter(
            "consumer_messages",
            "Messages the consumer finished, by outcome",
            ["queue", "outcome"],
            registry=r,
        )
        self.consumer_in_flight = Gauge(
            "consumer_in_flight_messages", "Messages being handled now", ["queue"], registry=r
        )
        self.consumer_handle_seconds = Histogram(
            "consumer_handle_seconds",
            "Time from receive to delete, per message",
            ["queue"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
