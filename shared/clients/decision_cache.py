"""Authorization decisions' two-level cache, shared by the access service (which
computes them) and the services that ask for them (the decisions themselves:
shared/contracts/decisions.py).

Level one is a dict in process: a hit costs no I/O. Level two is a Redis hash
per user, shared by every instance. Invalidation is immediate and everywhere:
a change to one user's role or entitlements deletes their hash and tells every
instance over pub/sub to drop their local entries; a change to any book bumps
a global epoch that retires every cached decision at once (books change
rarely). Entries also expire by TTL, which bounds staleness if a message is
ever missed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from redis.exceptions import RedisError

from shared.clients.pubsub import InvalidationBus
from shared.clients.singleflight import SingleFlight
from shared.contracts.decisions import Decision, DecisionRequest

log = structlog.get_logger(__name__)

INVALIDATION_CHANNEL = "authz:invalidate"
EPOCH_KEY = "authz:epoch"


@dataclass
class _Entry:
    decision: Decision
    expires: float
    json: bytes  # serialized once, so a cache hit answers without pydantic


class DecisionCache:
    def __init__(
        self,
        redis: Any,
        bus: InvalidationBus,
        *,
        local_ttl: float = 30.0,
        shared_ttl: int = 60,
        max_entries: int = 200_000,
    ) -> None:
        self._redis = redis
        self._bus = bus
        self._local_ttl = local_ttl
        self._shared_ttl = shared_ttl
        self._max_entries = max_entries
        self._entries: dict[str, dict[str, _Entry]] = {}  # user -> field -> entry
        self._size = 0
        self._epoch: str | None = None
        self._in_flight: SingleFlight[Decision] = SingleFlight()
        # Bumped by every invalidation; a value computed across a bump is not stored.
        self.generation = 0
        bus.subscribe(INVALIDATION_CHANNEL, self._on_invalidation)
        bus.on_reconnect(self._forget_everything)

    @staticmethod
    def _field(action: str, resource_id: uuid.UUID | None) -> str:
        return f"{action}|{resource_id or '-'}"

    def get_local(self, request: DecisionRequest) -> Decision | None:
        entry = self._local_entry(request)
        return entry.decision if entry else None

    def get_local_json(self, request: DecisionRequest) -> bytes | None:
        """The cached decision as JSON bytes, for answering straight from the cache."""
        entry = self._local_entry(request)
        return entry.json if entry else None

    def get_local_json_raw(
        self, user_id: str, action: str, resource_id: str | None
    ) -> bytes | None:
        """The same, from the request's own strings (no model built).

        Only canonical strings can match what was stored from a validated
        request, so a hit implies the request was valid.
        """
        entry = self._local_entry_by_key(user_id, f"{action}|{resource_id or '-'}")
        return entry.json if entry else None

    def _local_entry(self, request: DecisionRequest) -> _Entry | None:
        return self._local_entry_by_key(
            str(request.user_id), self._field(request.action, request.resource_id)
        )

    def _local_entry_by_key(self, user_id: str, field: str) -> _Entry | None:
        if not self._bus.connected:
            return None  # without invalidations a local copy could be stale
        user = self._entries.get(user_id)
        if user is None:
            return None
        entry = user.get(field)
        if entry is None or entry.expires < time.monotonic():
            return None
        return entry

    async def get(self, request: DecisionRequest) -> Decision | None:
        local = self.get_local(request)
        if local is not None:
            return local
        epoch = await self._current_epoch()
        if epoch is None:
            return None
        try:
            raw = await self._redis.hget(
                self._hash(epoch, request.user_id), self._field(request.action, request.resource_id)
            )
        except RedisError:
            return None
        if raw is None:
            return None
        decision = Decision.model_validate_json(raw)
        self._store_local(request, decision)
        return decision

    async def get_or_decide(
        self, request: DecisionRequest, decide: Callable[[], Awaitable[Decision]]
    ) -> Decision:
        """The cached decision, or `decide()`'s, computed once however many ask at once."""
        local = self.get_local(request)
        if local is not None:
            return local

        async def look_up_or_decide() -> Decision:
            generation = self.generation
            decision = await self.get(request)
            if decision is None:
                decision = await decide()
                await self.put(request, decision, generation)
            return decision

        key = (str(request.user_id), self._field(request.action, request.resource_id))
        return await self._in_flight.run(key, look_up_or_decide)

    async def put(self, request: DecisionRequest, decision: Decision, generation: int) -> None:
        if generation != self.generation:
            return  # something changed while this was being decided
        self._store_local(request, decision)
        epoch = await self._current_epoch()
        if epoch is None:
            return
        key = self._hash(epoch, request.user_id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(
                    key,
                    self._field(request.action, request.resource_id),
                    decision.model_dump_json(),
                )
                pipe.expire(key, self._shared_ttl)
                await pipe.execute()
        except RedisError:
            log.warning("could not share a decision in Redis")

    async def invalidate_user(self, user_id: uuid.UUID) -> None:
        self._drop_user(str(user_id))
        epoch = await self._current_epoch()
        if epoch is not None:
            try:
                await self._redis.delete(self._hash(epoch, user_id))
            except RedisError:
                log.warning("could not drop shared decisions", user_id=str(user_id))
        await self._bus.publish(INVALIDATION_CHANNEL, json.dumps({"user": str(user_id)}))

    async def invalidate_all(self) -> None:
        self._forget_everything()
        try:
            self._epoch = str(await self._redis.incr(EPOCH_KEY))
        except RedisError:
            log.warning("could not bump the decision epoch")
            self._epoch = None
        await self._bus.publish(INVALIDATION_CHANNEL, json.dumps({"epoch": self._epoch}))

    def _store_local(self, request: DecisionRequest, decision: Decision) -> None:
        if self._size >= self._max_entries:
            self._forget_everything()
        user = self._entries.setdefault(str(request.user_id), {})
        field = self._field(request.action, request.resource_id)
        if field not in user:
            self._size += 1
        user[field] = _Entry(
            decision, time.monotonic() + self._local_ttl, decision.model_dump_json().encode()
        )

    def _drop_user(self, user_id: str) -> None:
        self.generation += 1
        dropped = self._entries.pop(user_id, None)
        if dropped:
            self._size -= len(dropped)

    def _forget_everything(self) -> None:
        self.generation += 1
        self._entries = {}
        self._size = 0
        self._epoch = None  # re-read from Redis on next use

    def _on_invalidation(self, message: str) -> None:
        change = json.loads(message)
        if "user" in change:
            self._drop_user(change["user"])
        else:
            self._forget_everything()
            self._epoch = change.get("epoch")

    async def _current_epoch(self) -> str | None:
        if self._epoch is None:
            try:
                value = await self._redis.get(EPOCH_KEY)
            except RedisError:
                return None
            self._epoch = str(value or 0)
        return self._epoch

    @staticmethod
    def _hash(epoch: str, user_id: uuid.UUID) -> str:
        return f"authz:{epoch}:{user_id}"
