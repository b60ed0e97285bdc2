"""How content, delivery and metrics ask the access service for authorization decisions.

The answer comes from the shared decision cache (in process, then Redis) when it
can; otherwise from `POST /v1/decisions`, called with this service's own
client-credentials token. That token is fetched once and renewed shortly before
it expires, or at once if access answers 401 (a rotated key, a restart).

Access down with no cached decision: 503, never a guess. Every call is bounded:
a deadline (`access_timeout_seconds`) and a cap on calls in flight
(`access_max_in_flight`); a request past the cap is shed at once (503 with
Retry-After) instead of joining a queue that would only grow while access is
slow. Misses for the same decision join one call (the cache's single flight).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import structlog

from shared.clients.decision_cache import DecisionCache
from shared.clients.upstream import BoundedCalls
from shared.contracts.decisions import Action, Decision, DecisionRequest
from shared.contracts.errors import Forbidden, ServiceUnavailable
from shared.contracts.roles import Role
from shared.http.auth import Principal
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

# Renew the service token this long before it expires.
TOKEN_RENEWAL_MARGIN_SECONDS = 60.0


# What a refused caller is told to wait: access is either restarting or
# overloaded, and both pass in seconds.
RETRY_AFTER_SECONDS = 2


class AccessUnavailable(ServiceUnavailable):
    code = "access-unavailable"
    RETRY_AFTER_SECONDS = RETRY_AFTER_SECONDS


class AccessClient:
    def __init__(
        self, settings: ServiceSettings, http: httpx.AsyncClient, decisions: DecisionCache
    ) -> None:
        self._base_url = settings.access_url.rstrip("/")
        self._client_id = settings.service_name
        secret = settings.service_client_secret
        self._client_secret = secret.get_secret_value() if secret else ""
        self._http = http
        self.decisions = decisions
        self._token: str | None = None
        self._token_renews_at = 0.0
        self._token_lock = asyncio.Lock()
        self.calls = BoundedCalls(
            "access",
            deadline_seconds=settings.access_timeout_seconds,
            max_in_flight=settings.access_max_in_flight,
            unavailable=AccessUnavailable,
        )

    async def decide(
        self, user_id: uuid.UUID, action: Action, resource_id: uuid.UUID | None = None
    ) -> Decision:
        request = DecisionRequest(user_id=user_id, action=action, resource_id=resource_id)
        return await self.decisions.get_or_decide(request, lambda: self._ask(request))

    async def require(
        self,
        principal: Principal,
        action: Action,
        resource_id: uuid.UUID | None = None,
        *,
        minimum: Role | None = None,
    ) -> Decision:
        """Raise 403 unless access allows `principal` to do `action` now; the decision.

        `minimum`, the role the action needs, refuses a token that is too weak
        without a round trip; the decision itself is taken on the account's
        current role, so a demotion counts at once, whatever the token says.
        """
        if principal.kind != "user":
            raise Forbidden("This route is for people, not services.")
        if minimum is not None and not principal.role.at_least(minimum):
            raise Forbidden(f"This needs the {minimum.value} role or higher.")
        decision = await self.decide(principal.user_id, action, resource_id)
        if not decision.allow:
            raise Forbidden(f"Not allowed: {decision.reason}.", code="decision-denied")
        return decision

    async def _ask(self, request: DecisionRequest) -> Decision:
        return await self.calls.run(
            lambda: self._ask_now(request),
            busy="Authorization is busy right now; retry shortly.",
            late="Authorization cannot be checked right now.",
        )

    async def _ask_now(self, request: DecisionRequest) -> Decision:
        body = request.model_dump(mode="json")
        for attempt in (1, 2):
            token = await self.service_token(renew=attempt == 2)
            try:
                response = await self._http.post(
                    f"{self._base_url}/v1/decisions",
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                )
            except httpx.HTTPError as exc:
                log.warning("access service unreachable", error=repr(exc))
                raise AccessUnavailable("Authorization cannot be checked right now.") from exc
            if response.status_code == 401 and attempt == 1:
                continue  # the token may predate a key rotation: renew once
            if response.status_code != 200:
                log.error("access refused a decision", status=response.status_code)
                raise AccessUnavailable("Authorization cannot be checked right now.")
            return Decision.model_validate_json(response.content)
        raise AssertionError("unreachable")

    @property
    def holds_service_token(self) -> bool:
        return self._token is not None and time.monotonic() < self._token_renews_at

    async def prefetch_service_token(self) -> bool:
        """Fetch the credential ahead of the first privileged request (at start-up):
        after a deploy the first staff step otherwise paid for it inside its own
        deadline, while access was busiest. Whether it worked; a failure (access
        not up yet) leaves it to that first request."""
        try:
            await self.service_token()
        except AccessUnavailable:
            return False
        return True

    async def service_token(self, *, renew: bool = False) -> str:
        """This service's own credential (client credentials at access), kept until
        shortly before it expires: for its calls to access and to other services."""
        if not renew and self._token and time.monotonic() < self._token_renews_at:
            return self._token
        async with self._token_lock:
            if not renew and self._token and time.monotonic() < self._token_renews_at:
                return self._token
            try:
                response = await self._http.post(
                    f"{self._base_url}/v1/auth/service-token",
                    json={"client_id": self._client_id, "client_secret": self._client_secret},
                )
            except httpx.HTTPError as exc:
                raise AccessUnavailable("Authorization cannot be checked right now.") from exc
            if response.status_code != 200:
                log.error("access refused our service credential", status=response.status_code)
                raise AccessUnavailable("Authorization cannot be checked right now.")
            issued = response.json()
            self._token = str(issued["access_token"])
            lifetime = float(issued.get("expires_in", 300))
            self._token_renews_at = time.monotonic() + max(
                lifetime - TOKEN_RENEWAL_MARGIN_SECONDS, lifetime / 2
            )
            return self._token
