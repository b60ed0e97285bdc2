"""The link fast path: `POST /v1/deliveries` answered before routing when every
check it needs is already in process.

That is the common case on the hot path: a reader whose token was verified
before (and is not revoked), a book whose published object is cached, and a
cached decision that allows it. Then the link is signed, its event joins the
group commit, and the answer goes out without FastAPI's routing, parameter
parsing and dependency resolution, which cost more than everything else here.
Anything else (a miss, a refusal, odd input) goes on to the endpoint, which
gives the full checks and their errors.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from services.delivery.service import DeliveryService, client_ip
from shared.asgi import RouteLabel, bearer_token, read_body, replay, send_json, send_problem
from shared.errors import Problem

DELIVERIES_PATH = "/v1/deliveries"
_ROUTE = RouteLabel(DELIVERIES_PATH)


class DeliveryFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != DELIVERIES_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body, complete, pending = await read_body(receive)
        known = self._known(scope, body) if complete else None
        if known is None:
            await self.app(scope, replay(body, complete, pending, receive), send)
            return
        service, principal, book_id, book = known
        scope["route"] = _ROUTE
        try:
            link = await service.sign_and_record(
                principal, book_id, book, client_ip=client_ip(scope)
            )
        except Problem as problem:  # the rate limit, or a failed commit
            await send_problem(scope, send, problem)
            return
        await send_json(send, 200, link.json())

    @staticmethod
    def _known(scope: Scope, body: bytes) -> Any:
        state = scope["app"].state
        resources = getattr(state, "resources", None)
        components = getattr(state, "delivery", None)
        token = bearer_token(scope)
        if resources is None or components is None or token is None:
            return None
        principal = resources.verifier.verified_before(token)
        if principal is None or resources.denylist.denied_locally(principal.token_id) is not False:
            return None
        try:
            request = json.loads(body)
            if not isinstance(request, dict) or request.keys() != {"book_id"}:
                return None
            book_id = uuid.UUID(request["book_id"])
        except (ValueError, TypeError, AttributeError):
            return None
        service = DeliveryService(components, resources.session_factory)
        book = service.known_readable(principal, book_id)
        if book is None:
            return None
        return service, principal, book_id, book
