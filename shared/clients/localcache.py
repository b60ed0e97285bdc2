"""A cache in process, emptied on every instance the moment its source changes.

For read-mostly answers (a public catalog page, a book's public view): a hit
costs no I/O at all. A change, once committed, calls `invalidate()`, which
empties this instance's copy and tells every other instance over Redis pub/sub.
Whenever that channel is not being listened to (Redis down, resubscribing),
the cache answers nothing, so a missed message can never serve stale data;
entries also expire by TTL.

It is bounded by entries and, given `size_of`, by bytes, and evicts the least
recently used entry first: keys an anonymous caller chooses (query strings) can
neither grow it past its bound nor, by reaching it, push out the hot pages (#37
F12: reaching the bound used to empty it).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from shared.clients.pubsub import InvalidationBus
from shared.clients.singleflight import SingleFlight

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class InvalidatedCache(Generic[K, V]):
    def __init__(
        self,
        bus: InvalidationBus,
        channel: str,
        *,
        ttl: float = 60.0,
        max_entries: int = 10_000,
        max_bytes: int | None = None,
        size_of: Callable[[K, V], int] | None = None,
        parse_key: Callable[[str], K] | None = None,
    ) -> None:
        self._bus = bus
        self._channel = channel
        self._ttl = ttl
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._size_of = size_of
        # Least recently used first: key -> (value, expires at, size in bytes).
        self._entries: OrderedDict[K, tuple[V, float, int]] = OrderedDict()
        self._bytes = 0
        # Bumped by every invalidation; a value computed across a bump is not stored.
        self._generation = 0
        self._in_flight: SingleFlight[V] = SingleFlight()
        # With parse_key, a message naming one key drops only that entry ("*" drops all).
        self._parse_key = parse_key
        bus.subscribe(channel, self._on_message)
        bus.on_reconnect(self._forget_everything)

    def get(self, key: K) -> V | None:
        if not self._bus.listening(self._channel):
            return None
        found = self._entries.get(key)
        if found is None or found[1] < time.monotonic():
            return None
        self._entries.move_to_end(key)
        return found[0]

    @property
    def invalidations_seen(self) -> int:
        """How many invalidations this instance has applied (its own and those
        heard over Redis): a caller who published one can wait until it lands."""
        return self._generation

    @property
    def size(self) -> tuple[int, int]:
        """(entries, bytes) held now; bytes count only with `size_of`."""
        return len(self._entries), self._bytes

    def _store(self, key: K, value: V, expires: float) -> None:
        size = self._size_of(key, value) if self._size_of is not None else 0
        if self._max_bytes is not None and size > self._max_bytes:
            return  # larger than the whole cache: served, not kept
        self._drop(key)
        while self._entries and (
            len(self._entries) >= self._max_entries
            or (self._max_bytes is not None and self._bytes + size > self._max_bytes)
        ):
            oldest = next(iter(self._entries))
            self._drop(oldest)
        self._entries[key] = (value, expires, size)
        self._bytes += size

    def _drop(self, key: K) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._bytes -= found[2]

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, or `load()`'s, computed once however many ask at once."""
        cached = self.get(key)
        if cached is not None:
            return cached

        async def load_and_store() -> V:
            generation = self._generation
            value = await load()
            if generation == self._generation and self._bus.listening(self._channel):
                self._store(key, value, time.monotonic() + self._ttl)
            return value

        # Keyed by generation too: a request after an invalidation never joins
        # a load that began before it.
        return await self._in_flight.run((self._generation, key), load_and_store)

    async def prime(self, load: Callable[[], Awaitable[dict[K, V]]], *, wait: float = 5.0) -> int:
        """Fill the cache with many entries at once (before a new process takes
        traffic); how many were stored. Nothing is stored unless invalidations are
        being listened to, or if one arrived while loading."""
        if not await self._bus.until_listening(self._channel, wait=wait):
            return 0
        generation = self._generation
        entries = await load()
        if generation != self._generation or not self._bus.listening(self._channel):
            return 0
        expires = time.monotonic() + self._ttl
        for key, value in list(entries.items())[: self._max_entries]:
            self._store(key, value, expires)
        return sum(1 for key in entries if key in self._entries)

    async def invalidate(self, key: K | None = None) -> None:
        """Forget `key` (with parse_key set), or everything, here and on every instance."""
        if key is None or self._parse_key is None:
            self._forget_everything()
            await self._bus.publish(self._channel, "*")
        else:
            self._forget(key)
            await self._bus.publish(self._channel, str(key))

    def _on_message(self, message: str) -> None:
        if message == "*" or self._parse_key is None:
            self._forget_everything()
            return
        try:
            key = self._parse_key(message)
        except ValueError:
            self._forget_everything()  # cannot tell what changed: forget all
            return
        self._forget(key)

    def _forget(self, key: K) -> None:
        # Bumped for one key too: a load of that key in flight must not be stored.
        self._generation += 1
        self._drop(key)

    def _forget_everything(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._bytes = 0
