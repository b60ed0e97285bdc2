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
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.asgi import (
    RouteLabel,
    bearer_token,
    fits_fast_path,
    read_body,
    replay,
    send_json,
)

DECISIONS_PATH = "/v1/decisions"
FIELDS = frozenset({"user_id", "action", "resource_id"})


_DECISIONS_ROUTE = RouteLabel(DECISIONS_PATH)


class DecisionFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != DECISIONS_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body, complete, pending = await read_body(receive)
        answer = self._cached(scope, body) if fits_fast_path(body, complete) else None
        if answer is not None:
            scope["route"] = _DECISIONS_ROUTE
            await send_json(send, 200, answer)
            return
        await self.app(scope, replay(body, complete, pending, receive), send)

    @staticmethod
    def _cached(scope: Scope, body: bytes) -> bytes | None:
        resources: Any = getattr(scope["app"].state, "resources", None)
        if resources is None:
            return None
        token = bearer_token(scope)
        if token is None:
            return None
        principal = resources.verifier.verified_before(token)
        if principal is None or principal.kind != "service":
            return None
        if resources.denylist.denied_locally(principal.token_id, principal.session_id) is not False:
            return None
        try:
            request = json.loads(body)
        except (ValueError, RecursionError):  # a kilobyte can nest a thousand levels
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
