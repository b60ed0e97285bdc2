"""Cross-instance cache invalidation over Redis pub/sub.

Hot paths keep their caches in process (a Redis round trip per request would
halve their throughput); this bus tells every instance the moment something
cached changed. While the subscription is down, `connected` is False and
callers fall back to asking Redis or the source of truth directly.

The other half is the publisher's: a change is committed before it is told, so
an invalidation that Redis did not take (a stall, the circuit open) is kept and
sent again until it goes through, for as long as any listener may still hold
what it invalidates (`resend_for`, the longest cache TTL behind the bus).
Without that, a lost message left a revoked entitlement or a demoted role
served from a cache for its whole TTL, while every subscriber was connected
and so trusted its cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

Listener = Callable[[str], None]


# Invalidations waiting to be sent again are few (a Redis blip of seconds); the
# bound only keeps a long outage from growing memory. Past it the oldest are
# dropped: their caches expire by TTL, as before this resend existed.
MAX_UNSENT = 10_000


class InvalidationBus:
    def __init__(self, redis: Any, *, resend_for: float = 60.0) -> None:
        self._redis = redis
        self._resend_for = resend_for
        # (channel, message) -> when it was first due; a dict keeps the order and
        # joins repeats of one message.
        self._unsent: dict[tuple[str, str], float] = {}
        self._resending: asyncio.Task[None] | None = None
        self._resend_now = asyncio.Event()
        self._listeners: dict[str, list[Listener]] = {}
        self._on_reconnect: list[Callable[[], None]] = []
        self.connected = False
        self._subscribed: frozenset[str] = frozenset()
        self._channels_changed = asyncio.Event()
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()

    def subscribe(self, channel: str, listener: Listener) -> None:
        """Call `listener(message)` for each message on `channel`.

        A channel added while the bus runs is taken up by resubscribing, which
        counts as a reconnect; until then `listening(channel)` is False.
        """
        if channel not in self._listeners:
            self._channels_changed.set()
        self._listeners.setdefault(channel, []).append(listener)

    def listening(self, channel: str) -> bool:
        """Whether messages on `channel` are being received right now."""
        return self.connected and channel in self._subscribed

    async def until_listening(self, channel: str, *, wait: float) -> bool:
        """Whether `channel` is listened to within `wait` seconds (polled: the bus
        signals its first subscription, not each channel's)."""
        deadline = time.monotonic() + wait
        while not self.listening(channel) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return self.listening(channel)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Called after the subscription is (re)established: messages may have been missed."""
        self._on_reconnect.append(callback)

    async def publish(self, channel: str, message: str) -> None:
        """Tell every instance; if Redis does not take it now, keep it and send it
        again (in order, joined with repeats) until it does or `resend_for` passes."""
        try:
            await self._redis.publish(channel, message)
        except RedisError:
            self._keep_unsent(channel, message)

    @property
    def unsent(self) -> int:
        """Invalidations waiting to be sent again."""
        return len(self._unsent)

    def _keep_unsent(self, channel: str, message: str) -> None:
        if not self._unsent:
            log.warning("could not publish invalidation; will send it again", channel=channel)
        self._unsent.setdefault((channel, message), time.monotonic())
        while len(self._unsent) > MAX_UNSENT:
            dropped = next(iter(self._unsent))
            del self._unsent[dropped]
            log.warning("dropped an unsent invalidation (TTL applies)", channel=dropped[0])
        if self._resending is None or self._resending.done():
            self._resending = asyncio.create_task(self._resend())

    async def _resend(self) -> None:
        backoff = 0.1
        while self._unsent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._resend_now.wait(), backoff)
            self._resend_now.clear()
            now = time.monotonic()
            for key, since in list(self._unsent.items()):
                if now - since > self._resend_for:
                    # Every cache it was for has expired by now.
                    del self._unsent[key]
                    continue
                try:
                    await self._redis.publish(*key)
                except RedisError:
                    break  # still down: the rest wait for the next round, in order
                self._unsent.pop(key, None)
            else:
                backoff = 0.1
                continue
            # Short: while the circuit is open a try costs nothing (it fails at once).
            backoff = min(0.5, backoff * 2)
        log.info("unsent invalidations delivered or expired")

    @property
    def ready(self) -> asyncio.Event:
        """Set once the first subscription is in place."""
        return self._ready

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            if not self._listeners:
                await _first(stop.wait(), self._channels_changed.wait())
                continue
            self._channels_changed.clear()
            pubsub = self._redis.pubsub()
            try:
                channels = list(self._listeners)
                await pubsub.subscribe(*channels)
                self._subscribed = frozenset(channels)
                self.connected = True
                backoff = 0.1
                for callback in self._on_reconnect:
                    callback()
                self._ready.set()
                while not stop.is_set() and not self._channels_changed.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    if message is None or message.get("type") != "message":
                        continue
                    for listener in self._listeners.get(message["channel"], []):
                        try:
                            listener(str(message["data"]))
                        except Exception:  # one bad listener must not stop invalidation
                            log.exception(
                                "invalidation listener failed", channel=message["channel"]
                            )
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning("invalidation subscription lost", error=str(exc))
                self.connected = False
                await self._rest(backoff)
                backoff = min(5.0, backoff * 2)
            finally:
                self.connected = False
                self._subscribed = frozenset()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    def wake(self) -> None:
        """Redis is back (the circuit closed): subscribe and resend now, not after
        the backoff."""
        self._wake.set()
        self._resend_now.set()

    async def aclose(self) -> None:
        """Stop resending (at shutdown): what is left expires by TTL."""
        if self._resending is not None:
            self._resending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resending

    async def _rest(self, seconds: float) -> None:
        # Cleared after, not before, the wait: a wake that came while the last
        # attempt was failing still cuts this rest short.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()


async def _first(*waits: Any) -> None:
    """Wait until the first of several awaitables finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
