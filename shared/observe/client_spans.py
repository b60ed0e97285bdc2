"""Client spans for the calls the contrib instrumentations do not reach: AWS calls
through aiobotocore, SQL statements through an async engine per service. Each is a
child of the trace running when the call is made, and nothing outside one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.observe.tracing import in_recorded_trace, tracer, tracing_enabled

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from shared.settings import ServiceSettings


def trace_aws_client(client: Any) -> None:
    """A client span per AWS call (`S3.CopyObject`), from botocore's own
    before/after-call events, which aiobotocore emits around every request:
    the contrib botocore instrumentation wraps the synchronous client only."""

    def _start(model: Any, context: dict[str, Any], **_: Any) -> None:
        if not in_recorded_trace():
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
        if not in_recorded_trace():
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
