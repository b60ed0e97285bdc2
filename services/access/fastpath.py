"""The decisions fast path: a cached decision answered before routing.

`POST /v1/decisions` is called by every other service on every cache miss of
theirs, so its cached answer must cost as little as possible. This layer
answers only when everything is already known in process: a service token
verified before and not revoked, a body of exactly the expected shape, and a
decision in the local cache under the request's own (canonical) strings, which
can only be there because the endpoint validated such a request before.
Anything else, including every error, goes to the endpoint unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DECISIONS_PATH = "/v1/decisions"
MAX_FAST_BODY = 1024  # a decision request is ~130 bytes; anything bigger takes the long way
FIELDS = frozenset({"user_id", "action", "resource_id"})


@dataclass(frozen=True)
class _RouteName:
    path: str  # what the request metrics label the answer with


_DECISIONS_ROUTE = _RouteName(DECISIONS_PATH)


class DecisionFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != DECISIONS_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body, complete, pending = await _read_body(receive)
        answer = self._cached(scope, body) if complete else None
        if answer is not None:
            scope["route"] = _DECISIONS_ROUTE
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(answer)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": answer})
            return
        await self.app(scope, _replay(body, complete, pending, receive), send)

    @staticmethod
    def _cached(scope: Scope, body: bytes) -> bytes | None:
        resources: Any = getattr(scope["app"].state, "resources", None)
        if resources is None:
            return None
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer":
                    return None
        if not token:
            return None
        principal = resources.verifier.verified_before(token.strip())
        if principal is None or principal.kind != "service":
            return None
        if resources.denylist.denied_locally(principal.token_id) is not False:
            return None
        try:
            request = json.loads(body)
        except ValueError:
            return None
        if not isinstance(request, dict) or not request.keys() <= FIELDS:
            return None
        user_id, action = request.get("user_id"), request.get("action")
        resource_id = request.get("resource_id")
        if not (
            isinstance(user_id, str)
            and isinstance(action, str)
            and (resource_id is None or isinstance(resource_id, str))
        ):
            return None
        cached: bytes | None = resources.decisions.get_local_json_raw(user_id, action, resource_id)
        return cached


async def _read_body(receive: Receive) -> tuple[bytes, bool, Message | None]:
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


def _replay(body: bytes, complete: bool, pending: Message | None, receive: Receive) -> Receive:
    """A receive that first hands back what was already read, then the rest."""
    queue: list[Message] = [{"type": "http.request", "body": body, "more_body": not complete}]
    if pending is not None:
        queue.append(pending)

    async def replaying() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replaying
