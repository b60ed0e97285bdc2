"""Pure ASGI middleware: request ids and per-route metrics.

Deliberately not `BaseHTTPMiddleware`, which wraps every response in a stream
and costs a large share of a small endpoint's throughput.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.telemetry import Telemetry

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """Give every request an id (the caller's, if sane) and count it by route template."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.requests = telemetry.http_requests
        self.latency = telemetry.http_latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        encoded_id = request_id.encode()
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, encoded_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            # The template ("/v1/books/{book_id}"), never the raw path, so ids
            # cannot blow up the metric's cardinality.
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.requests.labels(method, template, str(status)).inc()
            self.latency.labels(method, template).observe(time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("request_id")


def _request_id_from(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _SAFE_REQUEST_ID.match(value):
            decoded: str = value.decode()
            return decoded
    return uuid.uuid4().hex
