"""Fixed-window rate limits in Redis (login attempts, link issuance).

One round trip per check (a pipelined INCR, EXPIRE NX, TTL). When Redis cannot
answer, limits fail open with a warning: the protected operations have their
own costs (argon2, authorization) and must stay available through a cache
outage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class LimitState:
    count: int
    retry_after: int  # seconds until the window resets

    def exceeded(self, limit: int) -> bool:
        return self.count > limit


class RateLimiter:
    def __init__(self, redis: Any, namespace: str) -> None:
        self._redis = redis
        self._namespace = namespace

    def _key(self, key: str) -> str:
        return f"ratelimit:{self._namespace}:{key}"

    async def hit(self, key: str, *, window_seconds: int) -> LimitState:
        """Count one event in `key`'s window; returns the count so far."""
        name = self._key(key)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, window_seconds, nx=True)
                pipe.ttl(name)
                count, _, ttl = await pipe.execute()
        except RedisError:
            log.warning("rate limit unavailable; allowing", namespace=self._namespace)
            return LimitState(0, 0)
        return LimitState(int(count), max(1, int(ttl)))

    async def peek(self, key: str) -> LimitState:
        name = self._key(key)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(name)
                pipe.ttl(name)
                count, ttl = await pipe.execute()
        except RedisError:
            log.warning("rate limit unavailable; allowing", namespace=self._namespace)
            return LimitState(0, 0)
        return LimitState(int(count or 0), max(1, int(ttl)))

    async def reset(self, key: str) -> None:
        try:
            await self._redis.delete(self._key(key))
        except RedisError:
            log.warning("could not reset rate limit", namespace=self._namespace)
