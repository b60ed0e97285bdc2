"""The books read most lately, from the metrics service (#20: the OPDS feeds'
"most read" group). Content knows no reading; metrics counts every open. The call
is bounded like every call to another service (a deadline, a cap in flight) and
made with content's own service credential. Metrics down or slow: the feeds go
without the group, which is never shown from stale or guessed figures.
"""

from __future__ import annotations

import uuid

import httpx
import structlog

from services.content.settings import ContentSettings
from shared.clients.access_client import AccessClient
from shared.clients.upstream import BoundedCalls
from shared.contracts.errors import ServiceUnavailable

log = structlog.get_logger(__name__)


class MetricsUnavailable(ServiceUnavailable):
    code = "metrics-unavailable"


class MostReadBooks:
    def __init__(
        self, settings: ContentSettings, http: httpx.AsyncClient, access: AccessClient
    ) -> None:
        self._url = settings.metrics_url.rstrip("/") + "/v1/metrics/most-read"
        self._http = http
        self._access = access
        self.calls = BoundedCalls(
            "metrics",
            deadline_seconds=settings.metrics_timeout_seconds,
            max_in_flight=4,
            unavailable=MetricsUnavailable,
        )

    async def ids(self, *, days: int = 30, limit: int = 10) -> list[uuid.UUID]:
        """Most opened first; raises MetricsUnavailable when metrics cannot say."""
        return await self.calls.run(
            lambda: self._get(days, limit),
            busy="Reading figures are busy.",
            late="Reading figures did not come in time.",
        )

    async def _get(self, days: int, limit: int) -> list[uuid.UUID]:
        try:
            token = await self._access.service_token()
            response = await self._http.get(
                self._url,
                params={"days": days, "limit": limit},
                headers={"Authorization": f"Bearer {token}"},
            )
        except (httpx.HTTPError, ServiceUnavailable) as exc:
            raise MetricsUnavailable("Reading figures cannot be read right now.") from exc
        if response.status_code != 200:
            log.warning("metrics refused the most read books", status=response.status_code)
            raise MetricsUnavailable("Reading figures cannot be read right now.")
        return [uuid.UUID(b["book_id"]) for b in response.json()["books"]]
