"""Cross-instance cache invalidation over Redis pub/sub.

Hot paths keep their caches in process (a Redis round trip per request would
halve their throughput); this bus tells every instance the moment something
cached changed. While the subscription is down, `connected` is False and
callers fall back to asking Redis or the source of truth directly.
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


class InvalidationBus:
    def __init__(self, redis: Any) -> None:
        self._redis = redis
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
        try:
            await self._redis.publish(channel, message)
        except RedisError:
            # The change itself is committed; other instances' caches expire by TTL.
            log.warning("could not publish invalidation", channel=channel)

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
        """Redis is back (the circuit closed): subscribe now, not after the backoff."""
        self._wake.set()

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
