"""A server span per request (OpenTelemetry), continuing the caller's trace; see
shared/observe/tracing.py for what is traced and what it costs."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from shared.observe.tracing import SERVER_SAMPLED, TraceBudget, tracer

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


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
            parent = otel_context.set_value(SERVER_SAMPLED, True, parent)
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
