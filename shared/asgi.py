"""Small pieces for pure-ASGI fast paths: answers a service gives before routing
when everything it needs is already in process (see the access and delivery
services' fastpath.py). Anything a fast path does not answer goes on to the
app, with the request body it read handed back untouched."""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.types import Message, Receive, Scope, Send

from shared.errors import PROBLEM_CONTENT_TYPE, Problem

MAX_FAST_BODY = 1024  # the fast paths' requests are ~100 bytes; bigger ones take the long way


@dataclass(frozen=True)
class RouteLabel:
    path: str  # what the request metrics label a fast answer with


async def read_body(receive: Receive) -> tuple[bytes, bool, Message | None]:
    """Up to MAX_FAST_BODY bytes of the body; whether that is all of it; a message
    other than body (a disconnect) that arrived instead, to be handed on."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False, message
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True, None
        if size > MAX_FAST_BODY:
            return b"".join(chunks), False, None


def fits_fast_path(body: bytes, complete: bool) -> bool:
    """Whole, and small: a body that arrived in one piece may still be large, and
    a large one takes the long way (the endpoint), as the fast paths promise."""
    return complete and len(body) <= MAX_FAST_BODY


def replay(body: bytes, complete: bool, pending: Message | None, receive: Receive) -> Receive:
    """A receive that first hands back what was already read, then the rest."""
    queue: list[Message] = [{"type": "http.request", "body": body, "more_body": not complete}]
    if pending is not None:
        queue.append(pending)

    async def replaying() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replaying


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    return None


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"application/json",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_problem(
    scope: Scope,
    send: Send,
    problem: Problem,
    *,
    headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
) -> None:
    """The same RFC 9457 body the app's handlers would give."""
    await send_json(
        send,
        problem.status,
        json.dumps(problem.body(scope)).encode(),
        content_type=PROBLEM_CONTENT_TYPE.encode(),
        headers=[
            *((k.lower().encode(), v.encode()) for k, v in problem.headers.items()),
            *headers,
        ],
    )


def client_ip(scope: Scope) -> str | None:
    """The client's address, or None when the server was not told one (an in-process
    test client). Behind the ALB, `stories serve` has uvicorn take it from
    X-Forwarded-For, and only from the trusted proxies (`TRUSTED_PROXIES`)."""
    client = scope.get("client")
    return str(client[0]) if client else None
