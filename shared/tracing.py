"""Tracing across HTTP and events (OpenTelemetry): one trace from a request through
the outbox, SNS and SQS to every consumer it reaches.

- A request's server span continues the caller's trace (W3C `traceparent`),
  named by route (`POST /v1/books/{book_id}/publish`): TracingMiddleware below.
- An event recorded while it runs carries the trace in its CloudEvents envelope
  (the distributed-tracing extension: `traceparent`, `tracestate`), so the relay's
  publish span and each consumer's process span join the same trace, however
  long the event waited in the outbox or a queue.
- HTTP calls to other services (httpx), SQL statements and Redis calls are
  child spans; log lines written inside a span carry its trace and span ids.

Off unless `TRACING_EXPORTER=otlp` (the ADOT collector sidecar in AWS, which sends
to X-Ray; Jaeger in compose): off, nothing is installed and nothing is paid. A
process that already has a tracer provider (a test's in-memory one) keeps it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        provider = TracerProvider(
            resource=Resource.create(
                {
                    "service.name": f"stories-{service}",
                    "service.namespace": "stories",
                    "deployment.environment.name": settings.environment.value,
                }
            ),
            sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)),
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


def trace_database(engine: AsyncEngine, settings: ServiceSettings) -> None:
    """A client span per SQL statement, in the trace running when it is sent.

    SQLAlchemy's own cursor events, not the contrib instrumentation: that one
    declares SQLAlchemy < 2.1 and instruments one engine per process, where the
    embedded run and the tests have one per service."""
    if not tracing_enabled(settings):
        return
    from sqlalchemy import event

    sync_engine = engine.sync_engine
    system = "postgresql" if sync_engine.dialect.name == "postgresql" else sync_engine.dialect.name
    namespace = settings.database_schema

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _start(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        context._stories_span = tracer().start_span(
            f"{operation} {namespace}" if namespace else operation,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": system,
                "db.namespace": namespace or "",
                "db.operation.name": operation,
                "db.query.text": statement[:2000],
            },
        )

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _end(
        _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        span = getattr(context, "_stories_span", None)
        if span is not None:
            span.end()

    @event.listens_for(sync_engine, "handle_error")
    def _failed(error: Any) -> None:
        span = getattr(error.execution_context, "_stories_span", None)
        if span is not None:
            span.record_exception(error.original_exception)
            span.set_status(Status(StatusCode.ERROR))
            span.end()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


# --- the trace inside an event's envelope -------------------------------------------------


def current_trace_context() -> dict[str, str]:
    """`traceparent` (and `tracestate`) of the span running now; empty outside one,
    or when tracing is off, so an envelope then carries nothing extra."""
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in ("traceparent", "tracestate")}


def event_context(envelope_fields: Mapping[str, Any]) -> otel_context.Context | None:
    """The trace an event was recorded in, from its envelope's extension attributes."""
    traceparent = envelope_fields.get("traceparent")
    if not isinstance(traceparent, str):
        return None
    carrier = {"traceparent": traceparent}
    if isinstance(envelope_fields.get("tracestate"), str):
        carrier["tracestate"] = envelope_fields["tracestate"]
    return propagate.extract(carrier)


@contextmanager
def event_span(
    name: str, kind: SpanKind, envelope_fields: Mapping[str, Any], **attributes: Any
) -> Iterator[Span]:
    """A span in the event's own trace (a producer's publish, a consumer's process)."""
    with tracer().start_as_current_span(
        name,
        context=event_context(envelope_fields),
        kind=kind,
        attributes={k: v for k, v in attributes.items() if v is not None},
    ) as span:
        yield span


# --- logs ---------------------------------------------------------------------------------


def add_trace_ids(
    _logger: object, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: a line written inside a span names its trace and span."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


# --- server spans -------------------------------------------------------------------------


class TracingMiddleware:
    """A server span per request, continuing the caller's trace (W3C `traceparent`),
    named by route (`POST /v1/books/{book_id}/publish`), never by raw path.

    Ours rather than FastAPI's native telemetry (turned off in create_app), which
    cost the cached catalog more than half its throughput in `stories bench
    content`: an unsampled request here pays for one sampling decision and a
    context switch, nothing else. Installed only when tracing is on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._tracer = tracer()

    @staticmethod
    def _route_of(scope: Scope) -> str | None:
        """The matched route's path template, which routing (or a fast path) leaves
        in the scope, as the request metrics read it."""
        template = getattr(scope.get("route"), "path", None)
        return template if isinstance(template, str) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parent = None
        for name, _ in scope["headers"]:
            if name == b"traceparent":
                parent = propagate.extract(
                    {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                     if k in (b"traceparent", b"tracestate")}
                )  # fmt: skip
                break
        method = scope["method"]
        span = self._tracer.start_span(method, context=parent, kind=SpanKind.SERVER)
        if not span.is_recording():  # not sampled: carry the decision downstream, no more
            token = otel_context.attach(trace.set_span_in_context(span, parent))
            try:
                await self.app(scope, receive, send)
            finally:
                otel_context.detach(token)
            return
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, send_and_note)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            otel_context.detach(token)
            route = self._route_of(scope)
            if route:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.request.method", method)
            span.set_attribute("url.path", scope["path"])
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
