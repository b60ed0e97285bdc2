"""The readers' fast path: `POST /v1/deliveries`, `PUT /v1/reading/{id}/progress` and
`GET /v1/reading/me` answered before routing whenever the request is well formed.

These three are the platform's hottest requests, and FastAPI's routing,
parameter parsing and dependency resolution cost more than everything they do.
So this middleware parses them itself, as strictly as their schemas do, and
then runs exactly what the endpoints run: the token verified (signature,
claims, deny-list), the book and the reader checked by the service, the link
signed or the page turn recorded, every refusal the same problem the endpoint
would give. It skips only FastAPI's plumbing, never a check. Anything not well
formed (odd JSON, extra fields, a page that is not an int) goes on to the
endpoint, whose validation answers it.

Every request with a well-formed body takes this path from the first one on,
so a cold process (a deploy) pays for loading what it has not cached yet, not
for FastAPI on each reader's first request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Receive, Scope, Send

from services.delivery.components import Components
from services.delivery.page_turns import progress_json, reading_list_json
from shared.contracts.errors import DatabaseBusy, Problem
from shared.contracts.events import BookFormatName
from shared.http.asgi import (
    RouteLabel,
    bearer_token,
    client_ip,
    fast_path_principal,
    fits_fast_path,
    read_body,
    replay,
    send_json,
    send_problem,
)
from shared.http.auth import Principal
from shared.resources import Resources, started_parts

DELIVERIES_PATH = "/v1/deliveries"
_ROUTE = RouteLabel(DELIVERIES_PATH)
_READING_PREFIX, _PROGRESS_SUFFIX = "/v1/reading/", "/progress"
_PROGRESS_ROUTE = RouteLabel("/v1/reading/{book_id}/progress")
READING_LIST_PATH = "/v1/reading/me"
_READING_LIST_ROUTE = RouteLabel(READING_LIST_PATH)
# The endpoint's `limit` query: default and bounds.
_DEFAULT_LIMIT, _MAX_LIMIT = 50, 100
# ProgressUpdate's bounds; anything outside them goes to the endpoint's validation.
_MAX_PAGES = 100_000
# What parsing a hostile body may raise: json.loads recurses on nesting, and a
# kilobyte can nest a thousand levels.
_UNPARSEABLE = (ValueError, TypeError, AttributeError, RecursionError)
_FORMATS: dict[object, BookFormatName] = {"pdf": "pdf", "pdf-lite": "pdf-lite"}


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
        elif method == "GET" and path == READING_LIST_PATH:
            await self._reading_list(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _link(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, complete, pending = await read_body(receive)
        wanted = _link_request(body) if fits_fast_path(body, complete) else None
        parts = _parts(scope) if wanted is not None else None
        if wanted is None or parts is None:
            await self.app(scope, replay(body, complete, pending, receive), send)
            return
        service, resources = parts
        book_id, book_format = wanted

        async def issue(principal: Principal) -> bytes:
            link = await service.links.issue(
                principal, book_id, client_ip=client_ip(scope), book_format=book_format
            )
            return link.json()

        await self._answer(scope, send, _ROUTE, resources, issue)

    async def _progress(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, complete, pending = await read_body(receive)
        turn = _progress_request(scope["path"], body) if fits_fast_path(body, complete) else None
        parts = _parts(scope) if turn is not None else None
        if turn is None or parts is None:
            await self.app(scope, replay(body, complete, pending, receive), send)
            return
        service, resources = parts
        book_id, page, total_pages = turn

        async def record(principal: Principal) -> bytes:
            state = await service.reading.record_progress(
                principal, book_id, page=page, total_pages=total_pages
            )
            return progress_json(state)

        await self._answer(scope, send, _PROGRESS_ROUTE, resources, record)

    async def _reading_list(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = _reading_list_limit(scope["query_string"])
        parts = _parts(scope) if limit is not None else None
        if limit is None or parts is None:
            await self.app(scope, receive, send)
            return
        service, resources = parts

        async def list_reading(principal: Principal) -> bytes:
            return reading_list_json(await service.reading.my_reading(principal, limit=limit))

        await self._answer(scope, send, _READING_LIST_ROUTE, resources, list_reading)

    async def _answer(
        self,
        scope: Scope,
        send: Send,
        route: RouteLabel,
        resources: Resources,
        work: Callable[[Principal], Awaitable[bytes]],
    ) -> None:
        """Check the caller, do `work` for them, answer 200 with what it gave, or the
        problem the endpoint would give (a full pool: 503 database-busy)."""
        scope["route"] = route
        try:
            principal = await fast_path_principal(scope, resources.verifier)
            body = await work(principal)
        except PoolTimeout:
            await send_problem(scope, send, DatabaseBusy())
            return
        except Problem as problem:
            await send_problem(scope, send, problem)
            return
        await send_json(send, 200, body)


def _parts(scope: Scope) -> tuple[Components, Resources] | None:
    """The service's parts and the resources; None before start-up ends or without a
    bearer token (the endpoint then answers 401 with its challenge)."""
    started = started_parts(scope["app"], Components)
    if started is None or bearer_token(scope) is None:
        return None
    resources, components = started
    return components, resources


def _reading_list_limit(query: bytes) -> int | None:
    """The `limit` of a plain `?limit=N` (1..100) or of no query (50), else None."""
    if not query:
        return _DEFAULT_LIMIT
    name, _, value = query.partition(b"=")
    if name != b"limit" or not value.isdigit() or len(value) > 3:
        return None
    limit = int(value)
    return limit if 1 <= limit <= _MAX_LIMIT else None


def _link_request(body: bytes) -> tuple[uuid.UUID, BookFormatName] | None:
    """Book and format of a well-formed `{"book_id": "<uuid>"}`, with or without
    `"format": "pdf" | "pdf-lite"` (DeliveryRequest), else None."""
    try:
        request = json.loads(body)
        if not isinstance(request, dict) or not request.keys() <= {"book_id", "format"}:
            return None
        book_id, book_format = request.get("book_id"), _FORMATS.get(request.get("format", "pdf"))
        if not isinstance(book_id, str) or book_format is None:
            return None
        return uuid.UUID(book_id), book_format
    except _UNPARSEABLE:
        return None


def _progress_request(path: str, body: bytes) -> tuple[uuid.UUID, int, int] | None:
    """Book, page and length of a well-formed progress report (ProgressUpdate), else None."""
    try:
        book_id = uuid.UUID(path[len(_READING_PREFIX) : -len(_PROGRESS_SUFFIX)])
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
    return book_id, page, total_pages
