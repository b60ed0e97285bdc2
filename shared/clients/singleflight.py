"""Single flight: concurrent requests for the same missing cache entry share one computation.

When a popular entry expires, every request in flight misses at the same
moment; without this they would all query Redis and the database together,
which is what a p99 is made of.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class SingleFlight(Generic[V]):
    def __init__(self) -> None:
        self._in_flight: dict[Hashable, asyncio.Future[V]] = {}

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> V:
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            value = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: waiters re-raise it; no warning if none
            raise
        else:
            future.set_result(value)
            return value
        finally:
            del self._in_flight[key]
