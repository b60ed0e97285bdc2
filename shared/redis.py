"""Redis from `REDIS_URL`; `memory://NAME` is an in-process stand-in for the embedded run.

Redis is a cache and a coordinator here, never the only copy of anything, so
the stand-in is safe for a laptop; settings refuse it in deployed environments.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

# memory:// URLs with the same name share one in-process server, so the four
# services of the embedded run see the same keys and pub/sub channels.
_IN_PROCESS_SERVERS: dict[str, Any] = {}


def create_redis(url: str) -> Redis:
    if url.startswith("memory://"):
        import fakeredis  # imported only for the embedded run

        name = url.removeprefix("memory://") or "default"
        server = _IN_PROCESS_SERVERS.setdefault(name, fakeredis.FakeServer())
        client: Redis = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
        return client
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=2,
        health_check_interval=30,
    )
