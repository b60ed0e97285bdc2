"""The trace inside an event's envelope (the CloudEvents distributed-tracing
extension): recorded with the event, so the relay's publish span and each
consumer's process span join the request's trace, however long the event waited
in the outbox or a queue."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

from shared.observe.tracing import tracer


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
