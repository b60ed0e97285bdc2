"""Calls to another of our services, bounded: a deadline for each call and a cap on
calls in flight. Past the cap a call is refused at once (the caller answers 503
with Retry-After) instead of joining a queue that only grows while the other
service is slow (#12: a metastable failure that outlasts the load)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from shared.contracts.errors import ServiceUnavailable

log = structlog.get_logger(__name__)

T = TypeVar("T")


class BoundedCalls:
    def __init__(
        self,
        upstream: str,
        *,
        deadline_seconds: float,
        max_in_flight: int,
        unavailable: type[ServiceUnavailable],
    ) -> None:
        self.upstream = upstream
        self.deadline = deadline_seconds
        self.max_in_flight = max_in_flight
        self.unavailable = unavailable
        self.in_flight = 0

    async def run(self, call: Callable[[], Awaitable[T]], *, busy: str, late: str) -> T:
        """`call()` within the deadline, if a place is free; else `unavailable(...)`
        with `busy` (shed) or `late` (deadline passed) as its detail."""
        if self.in_flight >= self.max_in_flight:
            log.warning("calls at their cap; shedding", upstream=self.upstream, cap=self.in_flight)
            raise self.unavailable(busy)
        self.in_flight += 1
        try:
            async with asyncio.timeout(self.deadline):
                return await call()
        except TimeoutError as exc:
            log.warning("no answer in time", upstream=self.upstream, deadline=self.deadline)
            raise self.unavailable(late) from exc
        finally:
            self.in_flight -= 1
