"""Tracing across HTTP and events (#15 item 3), with the OpenTelemetry SDK's in-memory
exporter: one trace from `POST /v1/books/{id}/publish` through content's outbox
relay (SNS) to delivery's and metrics' consumers (SQS), and log lines that name it.

This module installs the process's tracer provider (OpenTelemetry allows one per
process) and shuts it down afterwards, so later tests record nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.content.main import SERVICE as CONTENT
from services.delivery.main import SERVICE as DELIVERY
from shared.clients.db import drop_schema
from shared.contracts.roles import Role
from shared.http.tracing import TracingMiddleware
from shared.observe import tracing
from shared.service.migrations import upgrade
from shared.service.runtime import run_worker
from tests.harness.access import AccessHarness, running_access_harness
from tests.harness.content import ContentHarness, content_settings, start_content
from tests.harness.delivery import DeliveryHarness, delivery_settings, start_delivery
from tests.harness.metrics import MetricsHarness, running_metrics
from tests.support import eventually

# On; the exporter is the test's in-memory one.
TRACED: dict[str, Any] = {"tracing_exporter": "otlp"}


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=tracing.platform_sampler(1.0))  # as deployed, every trace
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        HTTPXClientInstrumentor().uninstrument()
        RedisInstrumentor().uninstrument()
        tracing._configured = False


@pytest.fixture(scope="module")
async def traced(
    spans: InMemorySpanExporter, database_url: str, moto_url: str
) -> AsyncIterator[tuple[AccessHarness, ContentHarness, DeliveryHarness, MetricsHarness]]:
    async with (
        running_access_harness(database_url, moto_url, **TRACED) as access,
        AsyncExitStack() as stack,
    ):
        content_config = content_settings(access, **TRACED)
        delivery_config = delivery_settings(access, **TRACED)
        await upgrade(
            CONTENT.migrations, content_config.database_url, content_config.database_schema
        )
        await upgrade(
            DELIVERY.migrations, delivery_config.database_url, delivery_config.database_schema
        )
        try:
            content = await start_content(stack, access, content_config)
            delivery = await start_delivery(stack, delivery_config)
            metrics = await stack.enter_async_context(running_metrics(access, **TRACED))
            stop = asyncio.Event()
            workers = [
                asyncio.create_task(run_worker(CONTENT, content.settings, stop, content.resources)),
                asyncio.create_task(
                    run_worker(DELIVERY, delivery.settings, stop, delivery.resources)
                ),
            ]
            try:
                yield access, content, delivery, metrics
            finally:
                stop.set()
                await asyncio.gather(*workers)
        finally:
            for config in (content_config, delivery_config):
                await drop_schema(config.database_url, config.database_schema)


async def test_one_trace_from_a_publish_to_every_consumer(
    spans: InMemorySpanExporter,
    traced: tuple[AccessHarness, ContentHarness, DeliveryHarness, MetricsHarness],
) -> None:
    content = traced[1]
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    approved = await content.approved(author, reviewer)
    book = await content.book(admin, approved)
    spans.clear()

    # The test is the caller: a trace starts at a server or an event, never at a
    # client alone (the platform sampler drops a lone client call's trace).
    with trace.get_tracer("test").start_as_current_span("test: publish"):
        published = await content.http.post(
            f"/v1/books/{book['id']}/publish", headers=admin.headers
        )
    assert published.status_code == 200, published.text

    def request_span() -> ReadableSpan | None:
        return next(
            (
                s
                for s in spans.get_finished_spans()
                if s.kind is SpanKind.SERVER and s.name == "POST /v1/books/{book_id}/publish"
            ),
            None,
        )

    def in_trace() -> list[ReadableSpan]:
        found = request_span()
        if found is None:
            return []
        trace_id = found.context.trace_id
        return [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]

    def consumed_by(queue_suffix: str) -> list[ReadableSpan]:
        return [
            s
            for s in in_trace()
            if s.kind is SpanKind.CONSUMER
            and s.name == "process book.published"
            and str(_attribute(s, "messaging.destination.name")).endswith(queue_suffix)
        ]

    await eventually(
        lambda: consumed_by("delivery") and consumed_by("metrics"),
        timeout=30,
        what="book.published processed by delivery and metrics, in the request's trace",
    )
    trace_spans = in_trace()
    request = request_span()
    assert request is not None
    assert _attribute(request, "http.response.status_code") == 200
    # The request's own SQL is in it, and the relay's publish, as a producer span.
    sql = [
        s for s in trace_spans if _attribute(s, "db.namespace") == content.settings.database_schema
    ]
    assert any(_descends(s, request, trace_spans) for s in sql), [s.name for s in trace_spans]
    (publish,) = [s for s in trace_spans if s.name == "publish book.published"]
    assert publish.kind is SpanKind.PRODUCER
    assert _attribute(publish, "messaging.system") == "aws_sns"
    # Each consumer's span descends from the request, through the publish.
    assert _descends(publish, request, trace_spans)
    for consumer in consumed_by("delivery") + consumed_by("metrics"):
        assert _descends(consumer, request, trace_spans), consumer.name
    # AWS calls are client spans too: the publish copies the book to its public key.
    (copy,) = [s for s in trace_spans if s.name == "S3.CopyObject"]
    assert copy.kind is SpanKind.CLIENT
    assert _descends(copy, request, trace_spans)
    assert _attribute(copy, "rpc.system") == "aws-api"
    assert _attribute(copy, "http.response.status_code") == 200
    # Content asked access for its decision over HTTP: access's server span is in it.
    (decision,) = [s for s in trace_spans if s.name == "POST /v1/decisions"]
    assert _descends(decision, request, trace_spans)
    # Meanwhile relays polled their outboxes, consumers long-polled SQS, mirrors
    # read Redis: none of it started a trace of its own.
    lone_calls = [
        s.name for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT and s.parent is None
    ]
    assert lone_calls == []


def test_log_lines_inside_a_span_carry_its_trace_and_span(
    spans: InMemorySpanExporter,
) -> None:
    with trace.get_tracer("test").start_as_current_span("work") as span:
        line = tracing.add_trace_ids(None, "info", {"event": "inside"})
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in tracing.add_trace_ids(None, "info", {"event": "outside"})


def test_a_trace_starts_at_a_server_or_an_event_never_at_a_lone_client_call() -> None:
    provider = TracerProvider(sampler=tracing.platform_sampler(0.0))
    none_drawn = provider.get_tracer("test")
    assert not none_drawn.start_span("SELECT", kind=SpanKind.CLIENT).is_recording()
    assert not none_drawn.start_span("process", kind=SpanKind.CONSUMER).is_recording()
    # The server middleware drew this request: the SDK does not draw again.
    drawn = otel_context.set_value(tracing.SERVER_SAMPLED, True)
    server = none_drawn.start_span("GET", context=drawn, kind=SpanKind.SERVER)
    assert server.is_recording()
    every = TracerProvider(sampler=tracing.platform_sampler(1.0)).get_tracer("test")
    assert not every.start_span("SELECT", kind=SpanKind.CLIENT).is_recording()
    root = every.start_span("process", kind=SpanKind.CONSUMER)
    assert root.is_recording()
    # Inside a trace, a client call follows it.
    child = every.start_span(
        "SELECT", context=trace.set_span_in_context(root), kind=SpanKind.CLIENT
    )
    assert child.is_recording()


async def test_an_unsampled_request_records_nothing_and_says_so_downstream(
    spans: InMemorySpanExporter,
) -> None:
    """At ratio 0 no request is traced: no span, no trace id in its log lines, and
    the services it calls are told (the `traceparent` sampled flag unset) not to trace it either."""
    seen: dict[str, Any] = {}

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        seen["traceparent"] = carrier.get("traceparent")
        seen["line"] = tracing.add_trace_ids(None, "info", {"event": "inside"})
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = TracingMiddleware(endpoint, sample_ratio=0.0)
    spans.clear()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        for _ in range(20):
            assert (await client.get("/v1/books")).status_code == 204
    assert spans.get_finished_spans() == ()
    assert seen["traceparent"] is not None
    assert not _sampled_flag(seen["traceparent"])
    assert "trace_id" not in seen["line"]
    # The same request at ratio 1 is traced, and its log line says so.
    app = TracingMiddleware(endpoint, sample_ratio=1.0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        assert (await client.get("/v1/books")).status_code == 204
    (server,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert _sampled_flag(seen["traceparent"])
    assert seen["line"]["trace_id"] == format(server.context.trace_id, "032x")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_capped_budget_starts_at_most_its_rate_of_traces_however_busy() -> None:
    """Drawn at ratio 1 with a cap of 5 a second: a burst of 100 starts 5 traces,
    half a second refills 2.5 (so 2 more), and a quiet minute banks no more than
    one second's worth."""
    clock = _Clock()
    budget = tracing.TraceBudget(1.0, 5.0, clock=clock)
    assert sum(budget.draw() for _ in range(100)) == 5
    clock.now += 0.5
    assert sum(budget.draw() for _ in range(100)) == 2
    clock.now += 60
    assert sum(budget.draw() for _ in range(100)) == 5
    # Uncapped, the ratio alone decides; at ratio 0 nothing starts, cap or none.
    assert all(tracing.TraceBudget(1.0).draw() for _ in range(100))
    assert not any(tracing.TraceBudget(0.0, 5.0, clock=clock).draw() for _ in range(100))


async def test_a_busy_server_traces_no_more_requests_than_its_cap(
    spans: InMemorySpanExporter,
) -> None:
    """The middleware draws from the budget: 50 requests in one instant, cap 3,
    make 3 server spans; the rest run untraced and say so downstream."""

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    clock = _Clock()
    app = TracingMiddleware(endpoint, budget=tracing.TraceBudget(1.0, 3.0, clock=clock))
    spans.clear()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        for _ in range(50):
            assert (await client.get("/v1/books")).status_code == 204
        assert len(spans.get_finished_spans()) == 3
        clock.now += 1.0
        for _ in range(50):
            assert (await client.get("/v1/books")).status_code == 204
    assert len(spans.get_finished_spans()) == 6
    # An event that starts a trace is capped as well, by the SDK's sampler.
    sampler = tracing.platform_sampler(1.0, 4.0, clock=clock)
    capped = TracerProvider(sampler=sampler).get_tracer("test")
    started = [capped.start_span("process", kind=SpanKind.CONSUMER) for _ in range(20)]
    assert sum(span.is_recording() for span in started) == 4


def _sampled_flag(traceparent: str) -> bool:
    return bool(int(traceparent.rsplit("-", 1)[1], 16) & 1)


def _attribute(span: ReadableSpan, name: str) -> Any:
    return (span.attributes or {}).get(name)


def _descends(span: ReadableSpan, ancestor: ReadableSpan, family: list[ReadableSpan]) -> bool:
    by_id = {s.context.span_id: s for s in family}
    current: ReadableSpan | None = span
    while current is not None and current.parent is not None:
        if current.parent.span_id == ancestor.context.span_id:
            return True
        current = by_id.get(current.parent.span_id)
    return False
