"""Fixed-window rate limits in Redis: login attempts (`RateLimiter`), link issuance
(`SharedWindowLimiter`, counted in process and shared in the background).

`RateLimiter` makes one round trip per check (a pipelined INCR, EXPIRE NX, TTL).
Past a limit a key can be *slowed* rather than stopped (`take_turn`): one attempt
per interval is still checked, so a guessing run crawls while the right password
still gets in (#37: one pupil's guesses no longer lock a whole school out).
When Redis cannot answer, it counts in process instead, with the same limits:
an outage is exactly when someone would try to guess passwords, so limits never
fall open. (Each process then counts alone: with N processes behind the load
balancer, a guesser gets at most N times the limit until Redis is back.)
"""

from __future__ import annotations

import asyncio
import math
import time
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
    def __init__(self, redis: Any, namespace: str, *, max_local_keys: int = 100_000) -> None:
        self._redis = redis
        self._namespace = namespace
        # While Redis is away: key -> (window ends at, count), this process only.
        self._local: dict[str, tuple[float, int]] = {}
        self._max_local_keys = max_local_keys
        # The same for slowed keys' turns: key -> when the turn is free again.
        self._local_turns: dict[str, float] = {}

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
            log.warning(
                "rate limit counted in process (Redis unavailable)", namespace=self._namespace
            )
            return self._hit_locally(key, window_seconds)
        local = self._peek_locally(key)  # what was counted here during an outage
        return LimitState(int(count) + local.count, max(1, int(ttl), local.retry_after))

    async def peek(self, key: str) -> LimitState:
        name = self._key(key)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(name)
                pipe.ttl(name)
                count, ttl = await pipe.execute()
        except RedisError:
            log.warning(
                "rate limit counted in process (Redis unavailable)", namespace=self._namespace
            )
            return self._peek_locally(key)
        local = self._peek_locally(key)
        return LimitState(int(count or 0) + local.count, max(1, int(ttl), local.retry_after))

    async def release(self, key: str, *, window_seconds: int) -> None:
        """Take back one `hit` whose event turned out not to count (a sign-in that
        succeeded): the hit reserves its place first, so callers in flight at once
        cannot all pass a limit they would cross together. If the window ended in
        between, the key comes back at -1 with a new window's expiry: one spare
        attempt, never a key without an end."""
        ends, count = self._local.get(key, (0.0, 0))
        if count > 0:
            self._local[key] = (ends, count - 1)
            return
        name = self._key(key)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.decr(name)
                pipe.expire(name, window_seconds, nx=True)
                await pipe.execute()
        except RedisError:
            log.warning("could not release a rate-limit hit", namespace=self._namespace)

    async def reset(self, key: str) -> None:
        self._local.pop(key, None)
        try:
            await self._redis.delete(self._key(key))
        except RedisError:
            log.warning("could not reset rate limit", namespace=self._namespace)

    def _turn_key(self, key: str) -> str:
        return f"ratelimit:{self._namespace}:turn:{key}"

    async def take_turn(self, key: str, *, seconds: int) -> int:
        """A slowed key's one attempt per `seconds`: 0 if this caller has it (held for
        `seconds`, or until `give_back_turn`), else how long until it is free."""
        name = self._turn_key(key)
        # A turn held here while Redis could not be reached still holds: Redis
        # answering again knows nothing of it and would hand out a fresh turn.
        held_until = self._local_turns.get(key, 0.0)
        if held_until > time.monotonic():
            return max(1, math.ceil(held_until - time.monotonic()))
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(name, 1, nx=True, ex=seconds)
                pipe.ttl(name)
                taken, ttl = await pipe.execute()
        except RedisError:
            log.warning(
                "slowed turn kept in process (Redis unavailable)", namespace=self._namespace
            )
            return self._take_turn_locally(key, seconds)
        return 0 if taken else max(1, int(ttl))

    async def hold_turn(self, key: str, *, seconds: int) -> None:
        """Start (or restart) a slowed key's interval: the failure that reached the
        limit holds the turn, so the next attempt waits out the interval first."""
        try:
            await self._redis.set(self._turn_key(key), 1, ex=seconds)
        except RedisError:
            log.warning(
                "slowed turn kept in process (Redis unavailable)", namespace=self._namespace
            )
            self._local_turns[key] = time.monotonic() + seconds

    async def give_back_turn(self, key: str) -> None:
        """The attempt that had the turn was not a guess (it succeeded, or checked
        nothing): the next one need not wait."""
        self._local_turns.pop(key, None)
        try:
            await self._redis.delete(self._turn_key(key))
        except RedisError:
            log.warning("could not give back a slowed turn", namespace=self._namespace)

    def _take_turn_locally(self, key: str, seconds: int) -> int:
        now = time.monotonic()
        free_at = self._local_turns.get(key, 0.0)
        if free_at > now:
            return max(1, math.ceil(free_at - now))
        if len(self._local_turns) >= self._max_local_keys:
            self._local_turns = {k: v for k, v in self._local_turns.items() if v > now}
        self._local_turns[key] = now + seconds
        return 0

    def _hit_locally(self, key: str, window_seconds: int) -> LimitState:
        now = time.monotonic()
        ends, count = self._local.get(key, (0.0, 0))
        if ends <= now:
            if len(self._local) >= self._max_local_keys:  # bounded: drop what has expired
                self._local = {k: v for k, v in self._local.items() if v[0] > now}
            ends, count = now + window_seconds, 0
        self._local[key] = (ends, count + 1)
        return LimitState(count + 1, max(1, math.ceil(ends - now)))

    def _peek_locally(self, key: str) -> LimitState:
        now = time.monotonic()
        ends, count = self._local.get(key, (0.0, 0))
        if ends <= now:
            return LimitState(0, 0)
        return LimitState(count, max(1, math.ceil(ends - now)))


@dataclass
class _Window:
    number: int
    seen_elsewhere: int = 0  # the shared count at the last sync, less our own part
    ours: int = 0  # counted here in this window
    unsynced: int = 0  # of `ours`, not yet added to Redis


class SharedWindowLimiter:
    """Fixed-window limits counted in process, shared between instances through Redis.

    For hot paths that cannot afford a round trip per request: a hit is counted
    here at once, and a background task adds the counts to Redis every
    `sync_seconds` and learns the other instances' counts back. All instances
    together may overshoot the limit by what the others counted during one sync
    interval; with Redis down each instance still enforces the limit on its own.
    """

    def __init__(
        self,
        redis: Any,
        namespace: str,
        *,
        limit: int,
        window_seconds: int,
        sync_seconds: float = 0.1,
    ) -> None:
        self._redis = redis
        self._namespace = namespace
        self.limit = limit
        self._window_seconds = window_seconds
        self._sync_seconds = sync_seconds
        self._windows: dict[str, _Window] = {}
        self._syncing: asyncio.Task[None] | None = None

    def hit(self, key: str) -> LimitState:
        now = time.time()
        number = int(now // self._window_seconds)
        window = self._windows.get(key)
        if window is None or window.number != number:
            window = self._windows[key] = _Window(number)
        window.ours += 1
        window.unsynced += 1
        if self._syncing is None or self._syncing.done():
            self._syncing = asyncio.get_running_loop().create_task(self._sync_soon())
        retry_after = max(1, math.ceil((number + 1) * self._window_seconds - now))
        return LimitState(window.seen_elsewhere + window.ours, retry_after)

    def count(self, key: str) -> int:
        """The key's count in the current window as this instance knows it (its own
        hits and the others' as of the last sync), without counting a hit."""
        window = self._windows.get(key)
        if window is None or window.number != int(time.time() // self._window_seconds):
            return 0
        return window.seen_elsewhere + window.ours

    def _window_name(self, number: int) -> str:
        return f"ratelimit:{self._namespace}:window:{number}"

    async def _sync_soon(self) -> None:
        await asyncio.sleep(self._sync_seconds)
        current = int(time.time() // self._window_seconds)
        # Windows that ended are of no further use.
        self._windows = {k: w for k, w in self._windows.items() if w.number >= current}
        pending = [(k, w, w.unsynced) for k, w in self._windows.items() if w.unsynced]
        if not pending:
            return
        # One hash a window, a field a key: one HINCRBY a key and one EXPIRE a
        # window, where a counter a key needed an EXPIRE each too (with a thousand
        # readers, 20,000 commands a second to build and parse, a tenth of
        # delivery's CPU when flat out).
        numbers = {window.number for _, window, _ in pending}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, window, count in pending:
                    pipe.hincrby(self._window_name(window.number), key, count)
                for number in numbers:
                    pipe.expire(self._window_name(number), 2 * self._window_seconds, nx=True)
                results = await pipe.execute()
        except RedisError:
            log.warning("rate limits not shared right now", namespace=self._namespace)
            return
        for (_, window, count), total in zip(pending, results[: len(pending)], strict=True):
            window.unsynced -= count
            window.seen_elsewhere = max(0, int(total) - (window.ours - window.unsynced))
