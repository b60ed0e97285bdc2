"""Tracing across HTTP and events (OpenTelemetry): one trace from a request through
the outbox, SNS and SQS to every consumer it reaches.

- A request's server span continues the caller's trace (W3C `traceparent`),
  named by route (`POST /v1/books/{book_id}/publish`): TracingMiddleware below.
- An event recorded while it runs carries the trace in its CloudEvents envelope
  (the distributed-tracing extension: `traceparent`, `tracestate`), so the relay's
  publish span and each consumer's process span join the same trace, however
  long the event waited in the outbox or a queue.
- HTTP calls to other services (httpx), SQL statements, Redis and AWS calls are
  child spans; log lines written inside a span carry its trace and span ids.
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
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

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


_SERVER_SAMPLED = otel_context.create_key("stories-server-sampled")


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
            if otel_context.get_value(_SERVER_SAMPLED, parent_context) is True:
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
            if kind is SpanKind.CLIENT or not budget.draw():
                return SamplingResult(Decision.DROP)
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

        def get_description(self) -> str:
            return f"StoriesRoot{{{budget}}}"

    return _RootSampler()


def _in_recorded_trace() -> bool:
    return trace.get_current_span().is_recording()


def trace_aws_client(client: Any) -> None:
    """A client span per AWS call (`S3.CopyObject`), from botocore's own
    before/after-call events, which aiobotocore emits around every request:
    the contrib botocore instrumentation wraps the synchronous client only."""

    def _start(model: Any, context: dict[str, Any], **_: Any) -> None:
        if not _in_recorded_trace():
            return
        service = model.service_model.service_id.hyphenize()
        context["_stories_span"] = tracer().start_span(
            f"{model.service_model.service_id}.{model.name}",
            kind=SpanKind.CLIENT,
            attributes={
                "rpc.system": "aws-api",
                "rpc.service": service,
                "rpc.method": model.name,
                "cloud.region": context.get("client_region") or "",
            },
        )

    def _end(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        span = context.pop("_stories_span", None)
        if span is None:
            return
        status = getattr(http_response, "status_code", 0)
        span.set_attribute("http.response.status_code", status)
        request_id = parsed.get("ResponseMetadata", {}).get("RequestId")
        if request_id:
            span.set_attribute("aws.request_id", request_id)
        if status >= 400:
            code = parsed.get("Error", {}).get("Code")
            span.set_status(Status(StatusCode.ERROR, code))
        span.end()

    def _failed(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        span = context.pop("_stories_span", None)
        if span is not None:
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR))
            span.end()

    client.meta.events.register("before-call", _start, unique_id="stories-trace-start")
    client.meta.events.register("after-call", _end, unique_id="stories-trace-end")
    client.meta.events.register("after-call-error", _failed, unique_id="stories-trace-failed")


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
        if not _in_recorded_trace():
            return  # unsampled, or no request at all (a relay's poll): no span
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
    """structlog processor: a line written inside a sampled span names its trace and
    span (an unsampled one's ids lead to no stored trace)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


# --- server spans -------------------------------------------------------------------------


class TracingMiddleware:
    """A server span per request, continuing the caller's trace (W3C `traceparent`),
    named by route (`POST /v1/books/{book_id}/publish`), never by raw path.

    Ours rather than FastAPI's native telemetry (turned off in create_app), which
    cost the cached catalog more than half its throughput in `stories bench
    content`. A request that starts a trace is drawn here, from `budget`:
    an unsampled one runs in a context made once, holding a valid but unsampled
    span context (so its SQL, Redis, AWS and HTTP calls, and the services it
    calls, record nothing either), without the SDK's span machinery, which cost
    12 us a request where the whole cached catalog page costs about 70 us.
    Unsampled requests share that span context's ids; no log line names them
    (see `add_trace_ids`), as no trace holds them. Installed only when tracing
    is on."""

    def __init__(
        self,
        app: ASGIApp,
        sample_ratio: float = 1.0,
        max_per_second: float | None = None,
        *,
        budget: TraceBudget | None = None,
    ) -> None:
        self.app = app
        self._budget = budget or TraceBudget(sample_ratio, max_per_second)
        self._tracer = tracer()
        unsampled = SpanContext(
            random.getrandbits(128) | 1,
            random.getrandbits(64) | 1,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.DEFAULT),
        )
        self._unsampled = trace.set_span_in_context(
            NonRecordingSpan(unsampled), otel_context.Context()
        )

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
        if parent is None or not trace.get_current_span(parent).get_span_context().is_valid:
            if not self._budget.draw():
                token = otel_context.attach(self._unsampled)
                try:
                    await self.app(scope, receive, send)
                finally:
                    otel_context.detach(token)
                return
            parent = otel_context.set_value(_SERVER_SAMPLED, True, parent)
        method = scope["method"]
        span = self._tracer.start_span(method, context=parent, kind=SpanKind.SERVER)
        if not span.is_recording():  # the caller's trace is unsampled: carry that on
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
            attributes: dict[str, str | int] = {
                "http.request.method": method,
                "url.path": scope["path"],
                "http.response.status_code": status,
            }
            route = self._route_of(scope)
            if route:
                span.update_name(f"{method} {route}")
                attributes["http.route"] = route
            span.set_attributes(attributes)  # one lock, not one per attribute
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
