"""A signed-in reader's next books (#42), from the access service, for the OPDS root's
"Recommended for you" group. Access owns the picks (what a reader may open, what
they read); content only shows them. The call carries the reader's own token, so
access answers for that reader and no one else, and it is bounded like every
call to another service. Access down or slow: the feed goes without the group,
never with a guess.
"""

from __future__ import annotations

import uuid

import httpx
import structlog

from services.content.settings import ContentSettings
from shared.clients.upstream import BoundedCalls
from shared.contracts.errors import ServiceUnavailable

log = structlog.get_logger(__name__)


class NextBooksUnavailable(ServiceUnavailable):
    code = "next-books-unavailable"


class ReadersNextBooks:
    def __init__(self, settings: ContentSettings, http: httpx.AsyncClient) -> None:
        self._url = settings.access_url.rstrip("/") + "/v1/users/me/recommendations"
        self._http = http
        self.calls = BoundedCalls(
            "access-next-books",
            deadline_seconds=settings.access_timeout_seconds,
            max_in_flight=8,
            unavailable=NextBooksUnavailable,
        )

    async def ids(self, authorization: str, *, limit: int = 10) -> list[uuid.UUID]:
        """The reader's picks, best first; NextBooksUnavailable when access cannot say."""
        return await self.calls.run(
            lambda: self._get(authorization, limit),
            busy="Recommendations are busy.",
            late="Recommendations did not come in time.",
        )

    async def _get(self, authorization: str, limit: int) -> list[uuid.UUID]:
        try:
            response = await self._http.get(
                self._url, params={"limit": limit}, headers={"Authorization": authorization}
            )
        except httpx.HTTPError as exc:
            raise NextBooksUnavailable("Recommendations cannot be read right now.") from exc
        if response.status_code != 200:
            log.info("access gave no recommendations", status=response.status_code)
            raise NextBooksUnavailable("Recommendations cannot be read right now.")
        return [uuid.UUID(item["book_id"]) for item in response.json()["items"]]
