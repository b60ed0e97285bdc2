"""A slowed key's turns (RateLimiter.take_turn): one caller per interval, handed on
at once when given back, on a real Redis shared by two instances and, with Redis
unreachable, in process."""

from __future__ import annotations

import asyncio
import uuid

from shared.clients.ratelimit import RateLimiter
from shared.clients.redis import create_redis
from stories.redis_process import redis_process
from tests.support import TEST_REDIS_URL, eventually


async def test_one_turn_per_interval_is_shared_by_every_instance() -> None:
    client = create_redis(TEST_REDIS_URL)
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    first, second = RateLimiter(client, namespace), RateLimiter(client, namespace)
    try:
        assert await first.take_turn("ip:10.0.0.1", seconds=2) == 0
        assert 0 < await second.take_turn("ip:10.0.0.1", seconds=2) <= 2
        assert await second.take_turn("ip:10.0.0.2", seconds=2) == 0  # another key
        await first.give_back_turn("ip:10.0.0.1")
        assert await second.take_turn("ip:10.0.0.1", seconds=2) == 0
        await first.hold_turn("ip:10.0.0.3", seconds=1)
        assert await second.take_turn("ip:10.0.0.3", seconds=1) > 0
        await asyncio.sleep(1.2)
        assert await second.take_turn("ip:10.0.0.3", seconds=1) == 0
    finally:
        await client.aclose()


async def test_turns_are_kept_in_process_while_redis_is_unreachable() -> None:
    client = create_redis("redis://127.0.0.1:1/0")  # nothing listens there
    limiter = RateLimiter(client, "test-down")
    try:
        assert await limiter.take_turn("k", seconds=5) == 0
        assert 0 < await limiter.take_turn("k", seconds=5) <= 5
        await limiter.give_back_turn("k")
        assert await limiter.take_turn("k", seconds=5) == 0
        await limiter.hold_turn("j", seconds=5)
        assert await limiter.take_turn("j", seconds=5) > 0
    finally:
        await client.aclose()


async def test_a_turn_held_while_redis_was_down_still_holds_when_it_is_back() -> None:
    """The failure that reached the limit held its turn in process (Redis down, or
    past its deadline on a loaded machine); Redis answering again must not hand
    the next guess a fresh turn (CI saw a second wrong password get a 401, not 429)."""
    with redis_process() as server:
        client = create_redis(server.url)
        limiter = RateLimiter(client, "test-back")
        try:
            server.kill()
            await limiter.hold_turn("k", seconds=30)  # kept in process
            server.start()
            await eventually(client.ping, what="Redis back")
            assert 0 < await limiter.take_turn("k", seconds=30) <= 30
            await limiter.give_back_turn("k")
            assert await limiter.take_turn("k", seconds=30) == 0
        finally:
            await client.aclose()
