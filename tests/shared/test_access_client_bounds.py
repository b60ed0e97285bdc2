"""Calls to access are bounded: a deadline, a cap on calls in flight, fast 503s, recovery.

The peer is a real HTTP server standing in for a slow or overloaded access
service (an edge this test controls: how long a decision takes).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from shared.clients.access_client import AccessClient, AccessUnavailable
from shared.clients.decision_cache import DecisionCache
from shared.clients.pubsub import InvalidationBus
from shared.contracts.decisions import Action
from tests.support import TEST_REDIS_URL, SampleSettings, ThreadedServer


class SlowAccess:
    """Answers decisions after `delay` seconds; counts the calls it got."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.calls = 0
        self._lock = threading.Lock()
        self.app = FastAPI()

        @self.app.post("/v1/auth/service-token")
        async def token() -> dict[str, object]:
            return {"access_token": "service-token", "expires_in": 300}

        @self.app.post("/v1/decisions")
        async def decide() -> dict[str, object]:
            with self._lock:
                self.calls += 1
            await asyncio.sleep(self.delay)
            return {"allow": True, "reason": "free book"}


@pytest.fixture(scope="module")
def slow_access() -> Iterator[tuple[SlowAccess, str]]:
    peer = SlowAccess()
    with ThreadedServer(peer.app) as server:
        yield peer, server.url


async def client(
    url: str, *, timeout: float, max_in_flight: int
) -> tuple[AccessClient, httpx.AsyncClient, Redis]:
    redis = Redis.from_url(TEST_REDIS_URL)
    http = httpx.AsyncClient(timeout=10)
    settings = SampleSettings(
        access_url=url, access_timeout_seconds=timeout, access_max_in_flight=max_in_flight
    )
    access = AccessClient(settings, http, DecisionCache(redis, InvalidationBus(redis)))
    return access, http, redis


async def test_a_slow_access_costs_one_deadline_not_a_queue(
    slow_access: tuple[SlowAccess, str],
) -> None:
    peer, url = slow_access
    access, http, redis = await client(url, timeout=0.3, max_in_flight=4)
    try:
        peer.delay = 5.0
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(access.decide(uuid.uuid4(), Action.BOOK_READ, uuid.uuid4()) for _ in range(20)),
            return_exceptions=True,
        )
        elapsed = time.monotonic() - started
        # 4 wait for their deadline; the other 16 are shed at once. Nobody waits 5 s.
        assert all(isinstance(o, AccessUnavailable) for o in outcomes), outcomes
        assert elapsed < 2.0, elapsed
        assert all(
            o.headers.get("Retry-After") for o in outcomes if isinstance(o, AccessUnavailable)
        )
        assert access.calls.in_flight == 0
        shed = [o for o in outcomes if isinstance(o, AccessUnavailable) and "busy" in str(o)]
        assert len(shed) == 16

        # The overload ends: the next call is answered, and nothing was left queued.
        peer.delay = 0.0
        decision = await access.decide(uuid.uuid4(), Action.BOOK_READ, uuid.uuid4())
        assert decision.allow
    finally:
        await http.aclose()
        await redis.aclose()


async def test_misses_for_one_decision_join_one_call(
    slow_access: tuple[SlowAccess, str],
) -> None:
    peer, url = slow_access
    access, http, redis = await client(url, timeout=2.0, max_in_flight=2)
    try:
        peer.delay = 0.2
        before = peer.calls
        user, book = uuid.uuid4(), uuid.uuid4()
        decisions = await asyncio.gather(
            *(access.decide(user, Action.BOOK_READ, book) for _ in range(30))
        )
        # 30 callers, a cap of 2: all answered, by one call.
        assert all(d.allow for d in decisions)
        assert peer.calls - before == 1
    finally:
        await http.aclose()
        await redis.aclose()
