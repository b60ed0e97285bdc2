"""The access service's fast paths: answers from its caches, before routing.

`GET /v1/users/me` is one of the readers' hottest requests (every app screen
shows who is signed in). Its cached profile, which the endpoint itself serves
from the profile cache (invalidated over pub/sub on any change), is answered
here to a caller whose token passes the platform's one principal check; a
miss, a refusal or a query goes to the endpoint.

`POST /v1/decisions` is called by every other service on every cache miss of
theirs, so its cached answer must cost as little as possible. This layer
answers only a body of exactly the expected shape whose decision is in the
local cache under the request's own (canonical) strings, which can only be
there because the endpoint validated such a request before, and only to a
service token that passes the platform's one principal check
(`shared.http.asgi.fast_path_principal`, the endpoint's own). Anything else,
including every refusal, goes to the endpoint, which answers it.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from services.access.components import Components
from shared.contracts.errors import Problem
from shared.http.asgi import (
    RouteLabel,
    bearer_token,
    fast_path_principal,
    fits_fast_path,
    read_body,
    replay,
    send_json,
)
from shared.http.auth import Principal
from shared.resources import Resources, started_parts

DECISIONS_PATH = "/v1/decisions"
FIELDS = frozenset({"user_id", "action", "resource_id"})


_DECISIONS_ROUTE = RouteLabel(DECISIONS_PATH)
MY_PROFILE_PATH = "/v1/users/me"
_MY_PROFILE_ROUTE = RouteLabel(MY_PROFILE_PATH)


class AccessFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"] == DECISIONS_PATH and scope["method"] == "POST":
            await self._decision(scope, receive, send)
        elif (
            scope["path"] == MY_PROFILE_PATH
            and scope["method"] == "GET"
            and not scope["query_string"]
        ):
            await self._my_profile(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _my_profile(self, scope: Scope, receive: Receive, send: Send) -> None:
        profile = await self._cached_profile(scope)
        if profile is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = _MY_PROFILE_ROUTE
        await send_json(send, 200, profile)

    @staticmethod
    async def _cached_profile(scope: Scope) -> bytes | None:
        """The caller's cached profile, if they pass the endpoint's own check and it
        is cached (exactly what the endpoint would answer); else None."""
        started = started_parts(scope["app"], Components)
        if started is None or bearer_token(scope) is None:
            return None
        resources, components = started
        principal = await _caller_of_kind(scope, resources, "user")
        return None if principal is None else components.profiles.get(principal.user_id)

    async def _decision(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, complete, pending = await read_body(receive)
        answer = await self._cached(scope, body) if fits_fast_path(body, complete) else None
        if answer is not None:
            scope["route"] = _DECISIONS_ROUTE
            await send_json(send, 200, answer)
            return
        await self.app(scope, replay(body, complete, pending, receive), send)

    @staticmethod
    async def _cached(scope: Scope, body: bytes) -> bytes | None:
        started = started_parts(scope["app"], Components)
        if started is None:
            return None
        resources = started[0]
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
        cached = resources.decisions.get_local_json_raw(user_id, action, resource_id)
        if cached is None:
            return None  # the endpoint verifies the caller and decides
        return None if await _caller_of_kind(scope, resources, "service") is None else cached


async def _caller_of_kind(scope: Scope, resources: Resources, kind: str) -> Principal | None:
    """The caller if they pass the endpoint's own check and are a `kind` ("user" or
    "service"); else None, and the endpoint gives the same refusal or answer."""
    try:
        principal = await fast_path_principal(scope, resources.verifier)
    except Problem:
        return None
    return principal if principal.kind == kind else None
