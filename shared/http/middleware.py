"""One pure ASGI middleware for what every request needs: an id, CORS, metrics.

Deliberately not `BaseHTTPMiddleware`, which wraps every response in a stream
and costs a large share of a small endpoint's throughput, and one layer rather
than three: the request headers are scanned once, metric children are cached
per label set, and the request id lives in one ContextVar the logs read.
(Starlette's CORSMiddleware alone costs about a sixth of a bare endpoint.)
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import MutableMapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.contracts.errors import Problem
from shared.http.asgi import RouteLabel, send_problem
from shared.observe.telemetry import Telemetry

log = structlog.get_logger(__name__)

_INTERNAL_ERROR = Problem(
    "Something went wrong on our side; quote the request id if you report it.",
    status=500,
    code="internal-error",
    title="Internal error",
)

REQUEST_ID_HEADER = b"x-request-id"
_VARY_ORIGIN = (b"vary", b"Origin")
_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")

current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def add_request_id(
    _logger: object, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: every log line written while handling a request names it."""
    request_id = current_request_id.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def request_id_of(scope: Scope) -> str:
    """The request's id: the caller's X-Request-ID where it is a safe one, else new
    (the gateway's own answers carry one too, as the README promises of every error)."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _SAFE_REQUEST_ID.match(value):
            return bytes(value).decode()
    return os.urandom(16).hex()


def head_as_get(scope: Scope, send: Send) -> tuple[Scope, Send]:
    """A HEAD request as the GET it asks about, and a `send` that keeps the GET's
    status and headers (its Content-Length too) and drops its body (RFC 9110
    9.3.2): every GET route answers HEAD, fast paths included (#38: it was a 405
    while Allow named it). The server's own scope stays HEAD."""
    ended = False

    async def send_without_body(message: Message) -> None:
        nonlocal ended
        if message["type"] == "http.response.body":
            if ended:
                return  # the rest of a streamed body: HEAD's answer has ended
            ended = True
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return {**scope, "method": "GET"}, send_without_body


@dataclass(frozen=True)
class CorsPolicy:
    allow_origins: Sequence[str]
    allow_methods: Sequence[str] = ("GET", "POST", "PUT", "PATCH", "DELETE")
    allow_headers: Sequence[str] = (
        "authorization",
        "content-type",
        "if-match",
        "if-none-match",
        "idempotency-key",
        "x-request-id",
    )
    # Content-Disposition: a browser app reads a download's file name (the class
    # report's CSV) only if it is exposed (#38).
    expose_headers: Sequence[str] = (
        "Content-Disposition",
        "ETag",
        "Location",
        "Retry-After",
        "X-Request-ID",
    )
    max_age_seconds: int = 600


_NOSNIFF = (b"x-content-type-options", b"nosniff")
CORS_REFUSED = Problem(
    "This origin may not call the platform from a browser (CORS_ORIGINS).",
    status=403,
    code="cors-origin-refused",
    title="Origin not allowed",
)
_NO_STORE = (b"cache-control", b"no-store")


class RequestContextMiddleware:
    """Give every request an id (the caller's, if sane), apply CORS, count it by route."""

    def __init__(
        self,
        app: ASGIApp,
        telemetry: Telemetry,
        cors: CorsPolicy,
        max_body_bytes: int,
        log_requests: bool = False,
    ) -> None:
        self.app = app
        self._max_body = max_body_bytes
        self._origins = frozenset(cors.allow_origins)
        self._allow_any_origin = "*" in self._origins
        self._methods = frozenset(m.upper() for m in cors.allow_methods)
        self._headers = frozenset(h.lower() for h in cors.allow_headers)
        self._cors_headers = [
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", ", ".join(cors.expose_headers).encode()),
        ]
        self._preflight_headers = [
            (b"access-control-allow-methods", ", ".join(sorted(self._methods)).encode()),
            (b"access-control-allow-headers", ", ".join(sorted(self._headers)).encode()),
            (b"access-control-max-age", str(cors.max_age_seconds).encode()),
        ]
        self._http = telemetry.http
        self._log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        origin = preflight_method = content_length = None
        chunked = authenticated = False
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER and _SAFE_REQUEST_ID.match(value):
                request_id = value.decode()
            elif name == b"authorization":
                authenticated = True
            elif name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight_method = value
            elif name == b"content-length":
                content_length = value
            elif name == b"transfer-encoding":
                chunked = True
        if request_id is None:
            request_id = os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        added = [(REQUEST_ID_HEADER, request_id.encode()), _VARY_ORIGIN, _NOSNIFF]
        if origin is not None and self._origin_allowed(origin):
            added += [(b"access-control-allow-origin", origin), *self._cors_headers]
            if preflight_method is not None and scope["method"] == "OPTIONS":
                await self._answer_preflight(scope, send, preflight_method, added)
                return
        elif preflight_method is not None and scope["method"] == "OPTIONS":
            # A preflight from an origin not allowed: refused as such, with no CORS
            # headers (the browser then stops), not the route's 405 (#38).
            await send_problem(scope, send, CORS_REFUSED, headers=added)
            return
        if content_length is not None and (
            not content_length.isdigit() or int(content_length) > self._max_body
        ):
            await self._refuse_body(scope, send, added)
            return
        token = current_request_id.set(request_id)
        status = 500
        responding = False
        started = time.perf_counter()
        if scope["method"] == "HEAD":
            scope, send = head_as_get(scope, send)

        async def send_with_headers(message: Message) -> None:
            nonlocal status, responding
            if message["type"] == "http.response.start":
                status, responding = message["status"], True
                headers = message.get("headers")
                if not isinstance(headers, list):
                    headers = message["headers"] = list(headers or ())
                headers.extend(added)  # the response's own list: no copy
                # An answer to a signed-in request is that person's: no shared
                # cache (a school's proxy) may keep it, unless the route said how.
                if authenticated and not any(k == b"cache-control" for k, _ in headers):
                    headers.append(_NO_STORE)
            await send(message)

        # With a Content-Length (checked above) the server delivers no more than
        # that; only a chunked body needs counting on the way in.
        guarded = self._count_body(receive) if chunked else receive
        try:
            await self.app(scope, guarded, send_with_headers)
        except Exception:
            if responding:
                raise  # the answer has begun: all the server can do is drop the connection
            # Answered here, not by Starlette's outermost handler, so a 500 carries
            # the request id and the CORS headers too: a browser can read it, and
            # whoever reports it can quote the id.
            log.exception("unhandled error", path=scope["path"])
            await send_problem(scope, send_with_headers, _INTERNAL_ERROR)
        finally:
            # Recorded (and logged, if asked) while the request id is still current.
            self._record(scope, status, time.perf_counter() - started)
            current_request_id.reset(token)

    async def _refuse_body(
        self, scope: Scope, send: Send, added: list[tuple[bytes, bytes]]
    ) -> None:
        await send_problem(
            scope,
            send,
            Problem(
                f"Request bodies are limited to {self._max_body} bytes.",
                status=413,
                code="payload-too-large",
                title="Request body too large",
            ),
            headers=added,
        )

    def _count_body(self, receive: Receive) -> Receive:
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_body:
                    # An HTTPException passes through FastAPI's body parsing
                    # (anything else would become a 400) and ends as a 413 problem.
                    raise HTTPException(413, "Request body too large")
            return message

        return receive_within_limit

    def _origin_allowed(self, origin: bytes) -> bool:
        return self._allow_any_origin or origin.decode("latin-1") in self._origins

    async def _answer_preflight(
        self, scope: Scope, send: Send, method: bytes, added: list[tuple[bytes, bytes]]
    ) -> None:
        requested_headers = b""
        for name, value in scope["headers"]:
            if name == b"access-control-request-headers":
                requested_headers = value
        asked = {h.strip().lower() for h in requested_headers.decode("latin-1").split(",")} - {""}
        allowed = method.decode("latin-1").upper() in self._methods and asked <= self._headers
        status = 204 if allowed else 403
        headers = added + self._preflight_headers if allowed else added
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        # The template ("/v1/books/{book_id}"), never the raw path, so ids
        # cannot blow up the metric's cardinality.
        template = getattr(route, "path", None) or "unmatched"
        self._http.observe(
            scope["method"], template, status, seconds, fast_path=isinstance(route, RouteLabel)
        )
        if self._log_requests:
            # The access log, when asked for (LOG_REQUESTS): one structured line per
            # request, with its id; the path without its query (which may hold a cursor).
            # A path that carries a credential (a parent's consent link, #41) is
            # logged as its route: a log must never hand anyone that link.
            path = template if "{token}" in template else scope.get("path", "")
            log.info(
                "request",
                method=scope["method"],
                path=path,
                route=template,
                status=status,
                ms=round(seconds * 1000, 1),
                client=(scope.get("client") or ("-",))[0],
            )
