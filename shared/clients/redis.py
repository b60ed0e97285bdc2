"""Redis from `REDIS_URL`; `memory://NAME` is an in-process stand-in for the embedded run.

Redis is a cache and a coordinator here, never the only copy of anything, so
the stand-in is safe for a laptop; settings refuse it in deployed environments.

A stalled Redis must cost a request milliseconds, not seconds: every read has a
short deadline (`REDIS_TIMEOUT_SECONDS`, no retries), and the first failure opens
a circuit for the whole process (`REDIS_CIRCUIT_SECONDS`): meanwhile every call
fails at once, without touching the network, and callers take their degraded
path (in-process limits, the mirrored deny-list, the database). When the circuit
is due to close, one call probes Redis while the others keep failing fast; its
success closes the circuit. Healing does not wait for traffic, nor for a call to
win its short deadline on a machine that is busy reconnecting everything: while
the circuit is open, `heal` pings Redis on a connection of its own, with a longer
deadline, and closes the circuit as soon as Redis answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# memory:// URLs with the same name share one in-process server, so the four
# services of the embedded run see the same keys and pub/sub channels.
_IN_PROCESS_SERVERS: dict[str, Any] = {}


class RedisCircuitOpenError(RedisConnectionError):
    """Redis failed a moment ago; this call was not attempted."""


class RedisCircuit:
    """One per process: open after a failure, for `open_seconds`, then half-open."""

    def __init__(
        self, open_seconds: float = 2.0, on_change: Callable[[bool], None] | None = None
    ) -> None:
        self.open_seconds = open_seconds
        self._on_change = on_change
        self._tripped = False
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return self._tripped

    def allow(self) -> None:
        now = time.monotonic()
        if now < self._open_until:
            raise RedisCircuitOpenError("Redis failed a moment ago; not trying again yet")
        if self._tripped:
            # Half-open: this call probes; until it answers, the others fail fast.
            self._open_until = now + self.open_seconds

    def failed(self) -> None:
        self._open_until = time.monotonic() + self.open_seconds
        if not self._tripped:
            self._tripped = True
            if self._on_change:
                self._on_change(True)

    def succeeded(self) -> None:
        if self._tripped:
            self._tripped = False
            self._open_until = 0.0
            if self._on_change:
                self._on_change(False)

    async def heal(
        self, url: str, stop: asyncio.Event, *, interval: float = 0.5, deadline: float = 1.0
    ) -> None:
        """Until `stop`: while open, PING Redis every `interval` on a connection of
        this task's own (outside the circuit, `deadline` to answer); an answer closes
        the circuit. The requests meanwhile keep failing fast."""
        probe = Redis.from_url(
            url,
            socket_connect_timeout=deadline,
            socket_timeout=deadline,
            retry=Retry(NoBackoff(), 0),
            single_connection_client=True,
        )
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
                if not self._tripped or stop.is_set():
                    continue
                try:
                    await probe.ping()
                except (RedisConnectionError, RedisTimeoutError, OSError):
                    continue  # redis-py dropped the connection; the next PING dials anew
                self.succeeded()
        finally:
            with contextlib.suppress(RedisConnectionError, OSError):
                await probe.aclose()


class _CircuitGuard:
    """Mixed into the pool's connection class: every connect, send and read goes
    through the process's circuit."""

    _circuit: RedisCircuit

    def __init__(self, *args: Any, circuit: RedisCircuit, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._circuit = circuit
        self._connecting = False

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        self._circuit.allow()
        self._connecting = True  # the handshake's own commands are part of this attempt
        try:
            await super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except (RedisConnectionError, RedisTimeoutError, OSError):
            self._circuit.failed()
            raise
        finally:
            self._connecting = False

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        if not self._connecting:
            self._circuit.allow()
        try:
            await super().send_packed_command(*args, **kwargs)  # type: ignore[misc]
        except (RedisConnectionError, RedisTimeoutError, OSError):
            self._circuit.failed()
            raise

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = await super().read_response(*args, **kwargs)  # type: ignore[misc]
        except (RedisConnectionError, RedisTimeoutError, OSError):
            self._circuit.failed()
            raise
        # A pub/sub poll that found nothing (a timeout of its own) proves nothing.
        if response is not None or kwargs.get("timeout") is None:
            self._circuit.succeeded()
        return response


def create_redis(
    url: str, *, timeout_seconds: float = 0.25, circuit: RedisCircuit | None = None
) -> Redis:
    if url.startswith("memory://"):
        import fakeredis  # imported only for the embedded run

        name = url.removeprefix("memory://") or "default"
        server = _IN_PROCESS_SERVERS.setdefault(name, fakeredis.FakeServer())
        client: Redis = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
        return client
    pool = ConnectionPool.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        # One attempt: a retry would pay the deadline again.
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )
    if circuit is not None:
        base = pool.connection_class
        pool.connection_class = type(f"Guarded{base.__name__}", (_CircuitGuard, base), {})
        pool.connection_kwargs["circuit"] = circuit
    return Redis.from_pool(pool)
