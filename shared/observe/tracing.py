"""Tracing across HTTP and events (OpenTelemetry): one trace from a request through
the outbox, SNS and SQS to every consumer it reaches.

- A request's server span continues the caller's trace (W3C `traceparent`),
  named by route (`POST /v1/books/{book_id}/publish`): shared/http/tracing.py.
- An event recorded while it runs carries the trace in its CloudEvents envelope
  (the distributed-tracing extension: `traceparent`, `tracestate`), so the relay's
  publish span and each consumer's process span join the same trace, however
  long the event waited in the outbox or a queue: observe/propagation.py.
- HTTP calls to other services (httpx), SQL statements, Redis and AWS calls are
  child spans (SQL and AWS ones from observe/client_spans.py); log lines written
  inside a span carry its trace and span ids.
- A client call made outside any trace (a relay's poll, a consumer's long poll,
  a mirror's refresh) starts none: alone it would be a one-span trace of noise.
- A new trace is drawn at a ratio and, where a cap is set, at most so many a
  second in each process (`TraceBudget`): a kept span costs about 100 us of the
  process's one core (the SDK's span, then its OTLP encoding), so a ratio alone
  would make tracing cost the most when the platform is busiest.
- An unsampled request costs a random draw and one context switch, not the
  SDK's span machinery: `stories bench content` holds tracing, as deployed, to
  the 10 % budget of the cached catalog.

Off unless `TRACING_EXPORTER=otlp` (the ADOT collector sidecar in AWS, which sends
to X-Ray; Jaeger in compose): off, nothing is installed and nothing is paid. A
process that already has a tracer provider (a test's in-memory one) keeps it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    SpanKind,
)

if TYPE_CHECKING:
    from shared.settings import ServiceSettings

TRACER_NAME = "stories"
_configured = False


def tracing_enabled(settings: ServiceSettings) -> bool:
    return settings.tracing_exporter != "none"


def configure_tracing(settings: ServiceSettings, service: str) -> bool:
    """Install this process's tracer provider and client instrumentation, once.
    False (and nothing installed) when tracing is off."""
    global _configured
    if not tracing_enabled(settings):
        return False
    if _configured:
        return True
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(
            resource=Resource.create(
                {
                    "service.name": f"stories-{service}",
                    "service.namespace": "stories",
                    "deployment.environment.name": settings.environment.value,
                }
            ),
            sampler=platform_sampler(
                settings.tracing_sample_ratio, settings.tracing_max_traces_per_second
            ),
        )
        # Spans leave in batches from a thread of their own: a slow or absent
        # collector costs requests nothing (the queue drops when full).
        endpoint = f"{settings.otel_exporter_otlp_endpoint.rstrip('/')}/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    RedisInstrumentor().instrument()
    _configured = True
    return True


# A request the server middleware drew to start a trace says so in its context, so
# the sampler does not draw it a second time.
SERVER_SAMPLED = otel_context.create_key("stories-server-sampled")


class TraceBudget:
    """Whether a new trace starts: drawn at `ratio`, then (when `per_second` is
    set) admitted by a token bucket refilled at `per_second` that holds at most
    one second's worth, so a quiet process still traces its first requests and a
    busy one pays for tracing a bounded share of its core, however busy it gets:
    X-Ray's own sampling rules pair a rate with a per-second reservoir for the
    same reason. Drawn on the event loop and from the SDK's sampler: a lock keeps
    the count exact."""

    def __init__(
        self,
        ratio: float,
        per_second: float | None = None,
        *,
        clock: Any = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.per_second = per_second
        self._clock = clock
        self._tokens = per_second or 0.0
        self._filled_at = clock()
        self._lock = threading.Lock()

    def draw(self) -> bool:
        if random.random() >= self.ratio:  # noqa: S311 (a sampling draw, not a secret)
            return False
        if self.per_second is None:
            return True
        with self._lock:
            now = self._clock()
            self._tokens = min(
                self.per_second, self._tokens + (now - self._filled_at) * self.per_second
            )
            self._filled_at = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True

    def __str__(self) -> str:
        cap = "" if self.per_second is None else f", at most {self.per_second:g}/s"
        return f"{self.ratio:g}{cap}"


def platform_sampler(
    ratio: float, per_second: float | None = None, *, clock: Any = time.monotonic
) -> Any:
    """Follow the parent's decision; for a trace's first span, see `_RootSampler`."""
    from opentelemetry.sdk.trace.sampling import ParentBased

    return ParentBased(_root_sampler(TraceBudget(ratio, per_second, clock=clock)))


def _root_sampler(budget: TraceBudget) -> Any:
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
    from opentelemetry.util.types import Attributes

    class _RootSampler(Sampler):
        """Who may start a trace: a request the server middleware already drew
        (its decision rides in the context, so it is not drawn twice), an event
        with no trace of its own (from `budget`), never a lone client call."""

        def should_sample(
            self,
            parent_context: otel_context.Context | None,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Attributes = None,
            links: Sequence[trace.Link] | None = None,
            trace_state: trace.TraceState | None = None,
        ) -> SamplingResult:
            if otel_context.get_value(SERVER_SAMPLED, parent_context) is True:
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
            if kind is SpanKind.CLIENT or not budget.draw():
                return SamplingResult(Decision.DROP)
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

        def get_description(self) -> str:
            return f"StoriesRoot{{{budget}}}"

    return _RootSampler()


def in_recorded_trace() -> bool:
    """Inside a sampled span: a client call outside one records nothing."""
    return trace.get_current_span().is_recording()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


# --- logs ---------------------------------------------------------------------------------


def add_trace_ids(
    _logger: object, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: a line written inside a sampled span names its trace and
    span (an unsampled one's ids lead to no stored trace)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event
