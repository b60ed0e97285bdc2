"""InvalidatedCache's bounds (#37 F12): by entries and by bytes, the least recently
used entry out first, so keys a caller makes up cannot push out the pages in use,
and reaching the bound empties nothing else. On a real bus over the test Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from shared.clients.localcache import InvalidatedCache
from shared.clients.pubsub import InvalidationBus
from shared.clients.redis import create_redis
from tests.support import TEST_REDIS_URL


@pytest.fixture
async def bus() -> AsyncIterator[InvalidationBus]:
    """A real bus on the test Redis, running, so caches on it store what they load."""
    client = create_redis(TEST_REDIS_URL)
    bus, stop = InvalidationBus(client), asyncio.Event()
    running = asyncio.create_task(bus.run(stop))
    try:
        yield bus
    finally:
        stop.set()
        await running
        await client.aclose()


async def fill(cache: InvalidatedCache[str, bytes], key: str, size: int) -> None:
    async def load() -> bytes:
        return b"x" * size

    await cache.get_or_load(key, load)


def channel() -> str:
    return f"test-cache-{uuid.uuid4().hex[:8]}"


async def test_a_byte_bound_evicts_the_least_recently_used_first(bus: InvalidationBus) -> None:
    name = channel()
    cache: InvalidatedCache[str, bytes] = InvalidatedCache(
        bus, name, max_bytes=10_000, size_of=lambda k, v: len(v)
    )
    assert await bus.until_listening(name, wait=10)
    await fill(cache, "hot", 3_000)
    await fill(cache, "warm", 3_000)
    for n in range(20):  # junk keys, the hot page read between them
        assert cache.get("hot") is not None
        await fill(cache, f"junk{n}", 3_000)
    assert cache.get("hot") is not None
    assert cache.get("warm") is None
    entries, held = cache.size
    assert held <= 10_000
    assert entries == 3


async def test_an_entry_bound_evicts_one_entry_not_all(bus: InvalidationBus) -> None:
    name = channel()
    cache: InvalidatedCache[str, bytes] = InvalidatedCache(bus, name, max_entries=3)
    assert await bus.until_listening(name, wait=10)
    for key in ("a", "b", "c", "d"):
        await fill(cache, key, 1)
    assert cache.get("a") is None
    assert [cache.get(k) is not None for k in ("b", "c", "d")] == [True, True, True]


async def test_an_entry_larger_than_the_cache_is_served_but_not_kept(
    bus: InvalidationBus,
) -> None:
    name = channel()
    cache: InvalidatedCache[str, bytes] = InvalidatedCache(
        bus, name, max_bytes=100, size_of=lambda k, v: len(v)
    )
    assert await bus.until_listening(name, wait=10)
    await fill(cache, "small", 10)
    await fill(cache, "huge", 1_000)
    assert cache.get("huge") is None
    assert cache.get("small") is not None
