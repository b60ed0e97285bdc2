"""The hot paths' rate limit (SharedWindowLimiter): counted in process, shared between
instances through Redis every `sync_seconds`, on a real Redis."""

from __future__ import annotations

import uuid

from shared.clients.ratelimit import SharedWindowLimiter
from shared.clients.redis import create_redis
from tests.support import TEST_REDIS_URL, eventually


async def test_two_instances_see_each_others_counts_per_key_after_a_sync() -> None:
    client = create_redis(TEST_REDIS_URL)
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    # An hour's window: the test does not straddle two.
    first, second = (
        SharedWindowLimiter(client, namespace, limit=10, window_seconds=3600, sync_seconds=0.05)
        for _ in range(2)
    )
    try:
        for _ in range(6):
            first.hit("reader-a")
        first.hit("reader-b")
        second.hit("reader-a")
        # Both have added their counts to Redis: one hash for the window.
        names = [name async for name in client.scan_iter(f"ratelimit:{namespace}:*")]

        async def shared_count(key: str) -> int:
            names[:] = [name async for name in client.scan_iter(f"ratelimit:{namespace}:*")]
            return int(await client.hget(names[0], key) or 0) if names else 0

        async def counted_everywhere() -> bool:
            return await shared_count("reader-a") == 7 and await shared_count("reader-b") == 1

        await eventually(counted_everywhere, what="both instances' counts in Redis")
        assert len(names) == 1
        assert 0 < await client.ttl(names[0]) <= 7200  # two windows at most
        # An instance learns the others' counts at its next sync, key by key.
        assert second.hit("reader-a").count in (2, 8)  # 8 if its first sync came last
        await eventually(lambda: second.count("reader-a") == 8, what="second learns a's 6")
        assert second.count("reader-b") == 0  # not counted here yet this window
        second.hit("reader-b")
        await eventually(lambda: second.count("reader-b") == 2, what="second learns b's 1")
        # 6 there and 5 here: past the limit of 10, although neither counted 10.
        assert [second.hit("reader-a").count for _ in range(3)] == [9, 10, 11]
    finally:
        await client.aclose()
