"""The fast-path tier: answers a service gives to its hottest requests before
routing (each service's fastpath.py), and the small ASGI pieces they share.

What a fast path may skip: FastAPI's routing, parameter parsing, dependency
resolution and response validation, which cost more than the work of a hot
request. It parses its request itself, as strictly as the endpoint's schema,
and hands anything else (a body over MAX_FAST_BODY, odd JSON, an extra field)
to the endpoint untouched.

What it must never skip, in every service:
- the caller's identity: `fast_path_principal`, the very check the endpoints'
  `current_principal` makes (signature, claims, expiry, deny-list);
- the service's own rules (authorization, rate limits), by calling the same
  service code the endpoint calls;
- the same answer for every refusal: `send_problem`, the app's problem body;
- what the shared middleware around it does (request id, CORS, body limit,
  request metrics, tracing): fast paths sit inside it, and each answer is
  counted in `http_fast_path_answers_total` under its `RouteLabel`.
A public answer (the catalog) needs no principal, and a request with a token
there goes to the endpoint, which decides what that caller sees.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from starlette.types import Message, Receive, Scope, Send

from shared.contracts.errors import PROBLEM_CONTENT_TYPE, Problem
from shared.http.auth import Principal, TokenVerifier, bearer_token_of, verify_bearer

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


def authorization(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return ""


def bearer_token(scope: Scope) -> str | None:
    return bearer_token_of(authorization(scope))


async def fast_path_principal(scope: Scope, verifier: TokenVerifier) -> Principal:
    """The caller, checked exactly as the endpoints check it (`verify_bearer`):
    a refusal is raised as the same Problem the endpoint would give."""
    return await verify_bearer(authorization(scope), verifier)


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


@functools.lru_cache(maxsize=4096)
def canonical_query(query_string: bytes, names: frozenset[str]) -> bytes:
    """A query string as the endpoint reads it, for a cache key: only the parameters
    it knows (FastAPI ignores the rest), the last value of each (as FastAPI takes
    it), in one order and one encoding. `?limit=100&junk=7` and `?junk=8&limit=100`
    are the same page, so callers cannot mint new keys with parameters nobody reads.

    Remembered for the query strings seen most lately: parsing costs ~4 µs, a tenth
    of a cached catalog page's whole answer; a hit costs ~0.2 µs (and made-up query
    strings only push each other out of this small table)."""
    if not query_string:
        return b""
    values = {
        name: value
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        if name in names
    }
    return urlencode(sorted(values.items())).encode("latin-1")
