"""Prometheus instruments, one registry per app instance.

A registry per instance (not the process-global one) keeps the embedded run,
where four services share a process, from mixing their figures, and keeps
import free of side effects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Telemetry:
    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.http_requests = Counter(
            "http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
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
