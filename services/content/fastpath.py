"""The public catalog's fast path: a cached page answered before routing.

A catalog page is the same for every anonymous reader, and the cache is keyed
by the raw query string of a request the endpoint has already validated and
answered. A hit therefore needs no routing, no parameter parsing, no
dependency and no serialization: this is what lets one worker answer thousands
of catalog requests a second. Anything else (a miss, a token, another path)
goes to the endpoint as usual, which fills the cache.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from services.content.catalog import catalog_cache_key, etag_matches, public_headers
from services.content.components import Components
from shared.http.asgi import RouteLabel, send_json
from shared.resources import started_parts

CATALOG_PATH = "/v1/books"
_CATALOG_ROUTE = RouteLabel(CATALOG_PATH)


class CatalogFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == CATALOG_PATH
            and scope["method"] == "GET"
            and (hit := self._cached(scope)) is not None
        ):
            tag, body, if_none_match = hit
            headers = public_headers(tag)
            scope["route"] = _CATALOG_ROUTE
            if etag_matches(tag, if_none_match):
                await send({"type": "http.response.start", "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
            await send_json(send, 200, body, headers=headers)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _cached(scope: Scope) -> tuple[str, bytes, str | None] | None:
        if_none_match = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                return None  # a signed-in caller may be a manager: the endpoint decides
            if name == b"if-none-match":
                if_none_match = value.decode("latin-1")
        started = started_parts(scope["app"], Components)
        if started is None:
            return None
        found = started[1].catalog.get(catalog_cache_key(scope["query_string"]))
        if found is None:
            return None
        tag, body = found
        return tag, body, if_none_match
