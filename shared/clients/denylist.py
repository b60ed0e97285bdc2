"""The token deny-list: logged-out tokens and ended sessions, refused by every
service until they would have expired. Redis holds it, each process mirrors it
(pub/sub); the verifier (shared/http/auth.py) asks it through `is_denied`."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import structlog
from redis.exceptions import RedisError

from shared.clients.pubsub import InvalidationBus
from shared.contracts.clock import now_utc
from shared.http.auth import CLOCK_SKEW_SECONDS, DENIED_TOKENS_CHANNEL, denylist_key
from shared.http.problems import ServiceUnavailable

log = structlog.get_logger(__name__)


class TokenDenyList:
    """Logged-out tokens, refused by every service until they would have expired.

    Redis holds the list; each instance mirrors it in process, kept current by
    pub/sub, so checking a token costs no round trip. Whenever the subscription
    is down or still catching up, checks go to Redis. If Redis cannot answer
    either, the last full copy decides (no denial can be written while Redis is
    down); with no copy at all, checks fail closed (503): a logged-out token
    must never work because of an outage.
    """

    def __init__(self, redis: Any, bus: InvalidationBus) -> None:
        self._redis = redis
        self._bus = bus
        self._denied: dict[str, float] = {}  # token id -> expiry (epoch seconds)
        self._synced = False  # the copy is complete and kept current by the subscription
        # A full copy was taken at least once. Kept apart from `_synced`: when the
        # subscription comes back, the copy is no longer current until it reloads,
        # but it still holds every denial made before the outage, which is all there
        # can be while Redis refuses (logout writes to Redis first). Clearing one
        # with the other turned every check between reconnect and reload into a 503.
        self._copy_taken = False
        self._loading: asyncio.Task[None] | None = None
        bus.subscribe(DENIED_TOKENS_CHANNEL, self._remember)
        bus.on_reconnect(self._resync)

    async def deny(self, token_id: str, expires_at: datetime) -> None:
        ttl = int((expires_at - now_utc()).total_seconds()) + CLOCK_SKEW_SECONDS
        if ttl <= 0:
            return
        await self._redis.set(denylist_key(token_id), "1", ex=ttl)
        self._denied[token_id] = time.time() + ttl
        await self._bus.publish(DENIED_TOKENS_CHANNEL, f"{token_id} {time.time() + ttl}")

    async def is_denied(self, token_id: str) -> bool:
        if self._bus.connected and self._synced:
            expiry = self._denied.get(token_id)
            return expiry is not None and expiry > time.time()
        try:
            return bool(await self._redis.exists(denylist_key(token_id)))
        except RedisError as exc:
            if self._copy_taken:
                # Redis is down, so nothing can be denied anywhere until it is
                # back (logout writes to Redis first): the copy taken before the
                # outage still holds every denial there is.
                expiry = self._denied.get(token_id)
                return expiry is not None and expiry > time.time()
            raise ServiceUnavailable("Token revocation cannot be checked right now.") from exc

    def _remember(self, message: str) -> None:
        token_id, _, expiry = message.partition(" ")
        self._denied[token_id] = float(expiry or time.time() + 3600)

    @property
    def synced(self) -> bool:
        """Whether the in-process copy is complete and kept current."""
        return self._bus.connected and self._synced

    def _resync(self) -> None:
        self._synced = False
        if self._loading is not None:
            self._loading.cancel()
        self._loading = asyncio.get_running_loop().create_task(self._load_until_synced())

    async def _load_until_synced(self) -> None:
        """Load, and on failure try again with backoff for as long as the subscription
        holds (a new subscription starts a load of its own): a copy that could not
        be taken once must not stay missing until the next reconnect."""
        backoff = 0.1
        while self._bus.connected:
            try:
                await self._load()
                return
            except RedisError as exc:
                log.warning("could not load the token deny-list; retrying", error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)

    async def _load(self) -> None:
        """Copy the whole list from Redis (after a (re)subscribe, messages may be missed)."""
        now = time.time()
        loaded: dict[str, float] = {}
        async for key in self._redis.scan_iter(match=denylist_key("*"), count=1000):
            ttl = await self._redis.ttl(key)
            if ttl and ttl > 0:
                loaded[key.removeprefix(denylist_key(""))] = now + ttl
        self._denied = {**loaded, **{k: v for k, v in self._denied.items() if v > now}}
        self._synced = True
        self._copy_taken = True
