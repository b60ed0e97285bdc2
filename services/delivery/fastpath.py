"""The readers' fast path: `POST /v1/deliveries` and `PUT /v1/reading/{id}/progress`
answered before routing when every check they need is already in process.

That is the common case on the hot paths: a reader whose token was verified
before (and is not revoked), a book whose published object is cached, and a
cached answer of the access rule that allows it. Then the link is signed (its
event joins a group commit), or the page turn joins the reading group commit,
and the answer goes out without FastAPI's routing, parameter parsing and
dependency resolution, which cost more than everything else here. Anything
else (a miss, a refusal, odd input) goes on to the endpoint, which gives the
full checks and their errors.
"""

from __future__ import annotations

import json
import uuid

from starlette.types import ASGIApp, Receive, Scope, Send

from services.delivery.reading import PageTurn, progress_json
from services.delivery.service import BookObject, DeliveryService, client_ip, now_utc
from shared.asgi import RouteLabel, bearer_token, read_body, replay, send_json, send_problem
from shared.auth import Principal
from shared.errors import Problem

DELIVERIES_PATH = "/v1/deliveries"
_ROUTE = RouteLabel(DELIVERIES_PATH)
_READING_PREFIX, _PROGRESS_SUFFIX = "/v1/reading/", "/progress"
_PROGRESS_ROUTE = RouteLabel("/v1/reading/{book_id}/progress")
# ProgressUpdate's bounds; anything outside them goes to the endpoint's validation.
_MAX_PAGES = 100_000
# What json.loads must refuse to parse deeply: nesting costs recursion, and a
# hostile body can nest a thousand levels in a kilobyte.
_UNPARSEABLE = (ValueError, TypeError, AttributeError, RecursionError)


class DeliveryFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == DELIVERIES_PATH and method == "POST":
            await self._link(scope, receive, send)
        elif (
            method == "PUT" and path.startswith(_READING_PREFIX) and path.endswith(_PROGRESS_SUFFIX)
        ):
            await self._progress(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _link(self, scope: Scope, receive: Receive, send: Send) -> None:
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

    async def _progress(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, complete, pending = await read_body(receive)
        turn = self._known_turn(scope, body) if complete else None
        if turn is None:
            await self.app(scope, replay(body, complete, pending, receive), send)
            return
        service, principal, book_id, page, total_pages = turn
        scope["route"] = _PROGRESS_ROUTE
        try:
            state = await service.c.reading.record(
                PageTurn(principal.user_id, book_id, page, total_pages, now_utc())
            )
        except Problem as problem:  # a failed commit
            await send_problem(scope, send, problem)
            return
        await send_json(send, 200, progress_json(state))

    def _known_turn(
        self, scope: Scope, body: bytes
    ) -> tuple[DeliveryService, Principal, uuid.UUID, int, int] | None:
        known = self._reader(scope)
        if known is None:
            return None
        service, principal = known
        try:
            book_id = uuid.UUID(scope["path"][len(_READING_PREFIX) : -len(_PROGRESS_SUFFIX)])
            report = json.loads(body)
        except _UNPARSEABLE:
            return None
        if not isinstance(report, dict) or report.keys() != {"page", "total_pages"}:
            return None
        page, total_pages = report["page"], report["total_pages"]
        # `type(...) is int`: ProgressUpdate is strict (true and "3" are not pages).
        if type(page) is not int or type(total_pages) is not int:
            return None
        if not 0 <= page <= total_pages <= _MAX_PAGES or total_pages == 0:
            return None
        if service.known_readable(principal, book_id) is None:
            return None
        return service, principal, book_id, page, total_pages

    def _reader(self, scope: Scope) -> tuple[DeliveryService, Principal] | None:
        state = scope["app"].state
        resources = getattr(state, "resources", None)
        components = getattr(state, "delivery", None)
        token = bearer_token(scope)
        if resources is None or components is None or token is None:
            return None
        principal = resources.verifier.verified_before(token)
        if principal is None or resources.denylist.denied_locally(principal.token_id) is not False:
            return None
        return DeliveryService(components), principal

    def _known(
        self, scope: Scope, body: bytes
    ) -> tuple[DeliveryService, Principal, uuid.UUID, BookObject] | None:
        known = self._reader(scope)
        if known is None:
            return None
        service, principal = known
        try:
            request = json.loads(body)
            if not isinstance(request, dict) or request.keys() != {"book_id"}:
                return None
            book_id = uuid.UUID(request["book_id"])
        except _UNPARSEABLE:
            return None
        book = service.known_readable(principal, book_id)
        if book is None:
            return None
        return service, principal, book_id, book
