"""The reverse proxy `stories up` serves on port 8000: each path to its service by
the ALB's rules (`stories.deployment.PUBLIC_ROUTES`), the merged OpenAPI document
and its docs served here, CORS answered once for the gateway's origin.

Internal paths (/v1/decisions, /metrics, /readyz) and paths no rule takes get the
ALB's own 404. Preflights never reach a service, and a service's own CORS headers
are replaced by the gateway's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import fastapi_offline
import httpx
import structlog
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from shared.contracts.errors import NotFound, ServiceUnavailable
from shared.http.asgi import send_problem
from shared.http.middleware import (
    CORS_REFUSED,
    REQUEST_ID_HEADER,
    CorsPolicy,
    head_as_get,
    request_id_of,
)
from stories.deployment import forwarded_to
from stories.gateway.openapi import TITLE

log = structlog.get_logger(__name__)

# Served by the gateway itself: the merged document and its Swagger UI and ReDoc.
DOCS_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
DOCS_ASSETS = "/docs-assets"

# Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection, not the message.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# What a client may not tell the service about itself: the gateway says it.
_SET_BY_GATEWAY = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-port", REQUEST_ID_HEADER}
)


def _has_dot_segment(path: str) -> bool:
    """`/v1/users/../decisions` would be matched as an access path but normalised
    on the way out into an internal one: such a path is never forwarded."""
    return any(segment in (".", "..") for segment in path.split("/"))


class Gateway:
    """A pure ASGI reverse proxy over the services' own addresses (`upstreams`).

    Every forwarded request has a deadline and a bound: at most `max_connections`
    at once to the services, a connection within `connect_seconds` and the first
    byte of the answer within `read_seconds`. A service that is down, full or slow
    is a fast 503 with Retry-After, never a hang.
    """

    def __init__(
        self,
        upstreams: Mapping[str, str],
        *,
        openapi: dict[str, Any],
        cors_origins: Sequence[str],
        max_connections: int = 256,
        connect_seconds: float = 2.0,
        read_seconds: float = 60.0,
    ) -> None:
        self._upstreams = {name: url.rstrip("/") for name, url in upstreams.items()}
        self._http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=64),
            timeout=httpx.Timeout(read_seconds, connect=connect_seconds, pool=1.0),
            follow_redirects=False,
        )
        self._cors = CorsPolicy(cors_origins)
        self._origins = frozenset(o.encode() for o in cors_origins)
        self._any_origin = "*" in cors_origins
        self._docs = _docs_app(openapi)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._docs(scope, receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets on this platform
        path: str = scope["path"]
        # One id for the request, the services' answers and the gateway's own (#38:
        # its 404s carried none): forwarded, so a service logs the same.
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        own = [(REQUEST_ID_HEADER, request_id.encode())]
        origin = _header(scope, b"origin")
        cors = self._cors_headers(origin)
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
            if cors:
                await self._answer_preflight(send, [*cors, *own])
            else:  # an origin not allowed: refused as such, not the route's 405
                await send_problem(scope, send, CORS_REFUSED, headers=own)
            return
        if path in DOCS_PATHS or path.startswith(DOCS_ASSETS + "/"):
            if scope["method"] == "HEAD":
                scope, send = head_as_get(scope, send)
            await self._docs(scope, receive, _with_headers(send, [*cors, *own]))
            return
        service = None if _has_dot_segment(path) else forwarded_to(path)
        if service is None:
            # What the ALB answers for an internal path or one no rule takes.
            await send_problem(scope, send, NotFound("No such route."), headers=[*cors, *own])
            return
        await self._forward(service, scope, receive, _with_headers(send, cors), request_id)

    def _cors_headers(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        if origin is None or not (self._any_origin or origin in self._origins):
            return []
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", ", ".join(self._cors.expose_headers).encode()),
            (b"vary", b"Origin"),
        ]

    async def _answer_preflight(self, send: Send, cors: list[tuple[bytes, bytes]]) -> None:
        headers = [
            *cors,
            (b"access-control-allow-methods", ", ".join(self._cors.allow_methods).encode()),
            (b"access-control-allow-headers", ", ".join(self._cors.allow_headers).encode()),
            (b"access-control-max-age", str(self._cors.max_age_seconds).encode()),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _forward(
        self, service: str, scope: Scope, receive: Receive, send: Send, request_id: str
    ) -> None:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        url = self._upstreams[service] + raw_path.decode("latin-1")
        if query:
            url += "?" + query.decode("latin-1")
        headers = [
            (name, value)
            for name, value in scope["headers"]
            if name not in _HOP_BY_HOP and name not in _SET_BY_GATEWAY
        ]
        headers.append((REQUEST_ID_HEADER, request_id.encode()))
        client = scope.get("client")
        server = scope.get("server")
        # The client's own address, as the ALB gives it: the services trust it from
        # the gateway alone (TRUSTED_PROXIES), so per-address limits still hold.
        if client:
            headers.append((b"x-forwarded-for", str(client[0]).encode()))
        headers.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()))
        if server and server[1] is not None:
            headers.append((b"x-forwarded-port", str(server[1]).encode()))
        has_body = any(name in (b"content-length", b"transfer-encoding") for name, _ in headers)
        has_body = has_body or _header(scope, b"transfer-encoding") is not None
        request = self._http.build_request(
            scope["method"],
            url,
            headers=headers,
            content=_body(receive) if has_body else None,
        )
        own = [(REQUEST_ID_HEADER, request_id.encode())]
        try:
            response = await self._http.send(request, stream=True)
        except httpx.PoolTimeout:
            await send_problem(
                scope,
                send,
                ServiceUnavailable("The gateway is at its limit of open requests."),
                headers=own,
            )
            return
        except httpx.HTTPError as exc:
            # Connect, timeout or anything else on the way: the same fast 503.
            log.warning("gateway: service did not answer", service=service, error=repr(exc))
            await send_problem(
                scope,
                send,
                ServiceUnavailable(f"The {service} service is not answering."),
                headers=own,
            )
            return
        try:
            out = [
                (name, value)
                for name, value in response.headers.raw
                if name.lower() not in _HOP_BY_HOP
                and name.lower() != b"date"  # the gateway's own server sends one
                # CORS is the gateway's to answer (below), not each service's.
                and not name.lower().startswith(b"access-control-")
            ]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": out}
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _with_headers(send: Send, added: list[tuple[bytes, bytes]]) -> Send:
    if not added:
        return send

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (k, v)
                for k, v in message.get("headers", [])
                if not k.lower().startswith(b"access-control-") and k.lower() != b"vary"
            ]
            message = {**message, "headers": [*headers, *added]}
        await send(message)

    return sending


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _docs_app(openapi: dict[str, Any]) -> FastAPI:
    """Swagger UI and ReDoc for the merged document, served (assets too) offline."""
    app: FastAPI = fastapi_offline.FastAPIOffline(
        title=TITLE,
        openapi_url="/openapi.json",
        static_url=DOCS_ASSETS,
    )
    app.openapi = lambda: openapi  # type: ignore[method-assign]
    return app
