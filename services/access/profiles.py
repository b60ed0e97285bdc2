"""Serialized account profiles cached in process, for `GET /v1/users/me`.

A database read per call would cost more than everything else on that route;
profiles change rarely (a role change) and every change is announced on the
decisions' invalidation channel, which every instance already listens to.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable

from shared.clients.decision_cache import INVALIDATION_CHANNEL
from shared.clients.pubsub import InvalidationBus
from shared.clients.singleflight import SingleFlight


class ProfileCache:
    def __init__(self, bus: InvalidationBus, *, ttl: float = 30.0, max_entries: int = 100_000):
        self._bus = bus
        self._ttl = ttl
        self._max_entries = max_entries
        self._profiles: dict[uuid.UUID, tuple[bytes, float]] = {}
        self.generation = 0
        self.in_flight: SingleFlight[bytes] = SingleFlight()
        bus.subscribe(INVALIDATION_CHANNEL, self._on_invalidation)
        bus.on_reconnect(self._forget_everything)

    def get(self, user_id: uuid.UUID) -> bytes | None:
        if not self._bus.connected:
            return None
        found = self._profiles.get(user_id)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def put(self, user_id: uuid.UUID, profile: bytes, generation: int) -> None:
        if generation != self.generation:
            return  # changed while it was being read
        if len(self._profiles) >= self._max_entries:
            self._profiles.clear()
        self._profiles[user_id] = (profile, time.monotonic() + self._ttl)

    async def prime(
        self, load: Callable[[], Awaitable[dict[uuid.UUID, bytes]]], *, wait: float = 5.0
    ) -> int:
        """Fill the cache with many profiles at once (before a new process takes
        traffic); how many were stored. Nothing is stored unless invalidations are
        being listened to, or if one arrived while loading."""
        if not await self._bus.until_listening(INVALIDATION_CHANNEL, wait=wait):
            return 0
        generation = self.generation
        profiles = await load()
        for user_id, profile in list(profiles.items())[: self._max_entries]:
            self.put(user_id, profile, generation)
        return len(self._profiles) if generation == self.generation else 0

    def drop(self, user_id: uuid.UUID) -> None:
        self.generation += 1
        self._profiles.pop(user_id, None)

    def _forget_everything(self) -> None:
        self.generation += 1
        self._profiles.clear()

    def _on_invalidation(self, message: str) -> None:
        change = json.loads(message)
        if "user" in change:
            self.drop(uuid.UUID(change["user"]))
