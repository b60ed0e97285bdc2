"""Distinct readers as Redis HyperLogLogs, one per hour.

Counters of a batch are added up in process and written in one statement just
before the batch commits; distinct readers go to PostgreSQL exactly and to Redis
as HyperLogLogs once the batch has committed, so the overview's real-time reader
counts cost one PFCOUNT and no table scan.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.metrics import queries, repository
from services.metrics.terms import HOUR
from shared.clients.db import unit_of_work
from shared.contracts.clock import hour_of

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from shared.resources import Resources

log = structlog.get_logger(__name__)

READER_SKETCH_TTL = int(timedelta(days=9).total_seconds())  # the 7-day window, and slack
READER_WINDOW = timedelta(days=8)  # what a reseal puts back: the 7-day window and its edge


@dataclass(frozen=True)
class ReaderSketches:
    """Distinct readers per hour as Redis HyperLogLogs (12 KB at most each, ±0.8 %):
    a window's count is one PFCOUNT over its hours, whatever the number of readers.

    A count comes from them only when they are known to be complete for the window
    (`complete_for`): Redis holds the seal (written by the worker after it put
    every reader of the last days in, and lost with everything else when Redis
    restarts empty), and PostgreSQL knows of no batch whose sketch write is still
    unconfirmed. Otherwise the figure is counted exactly in PostgreSQL and says
    so, while the worker reseals the sketches from `reader_hours` on its own.
    """

    redis: Redis
    prefix: str

    @classmethod
    def of(cls, resources: Resources) -> ReaderSketches:
        # Named after the deployment, like its queues, so deployments can share a Redis.
        return cls(resources.redis, f"{resources.settings.resource_prefix}metrics:readers:")

    def key(self, hour: datetime) -> str:
        return self.prefix + hour.strftime("%Y%m%d%H")

    @property
    def seal_key(self) -> str:
        # No expiry: only losing Redis's data (a restart, a flush) removes it.
        return self.prefix + "sealed"

    async def complete_for(self, session: AsyncSession, since: datetime) -> bool:
        if not await self.redis.exists(self.seal_key):
            return False
        return not await repository.unsealed_hours(session, since)

    async def reseal(self, session_factory: async_sessionmaker[AsyncSession], now: datetime) -> int:
        """Put back what the sketches may lack, from PostgreSQL's exact `reader_hours`:
        every hour of the window after Redis lost its data, else the hours with
        unconfirmed writes. Returns how many hours were resealed."""
        since = hour_of(now) - READER_WINDOW
        sealed = bool(await self.redis.exists(self.seal_key))
        async with session_factory() as session:
            # Pending first, then the readers: a batch committed in between is in
            # the readers and keeps its own pending count, so nothing is lost.
            pending = await repository.unsealed_hours(session, since)
            if sealed and not pending:
                return 0
            pairs = await queries.reader_pairs(session, since, hour_of(now) + HOUR)
        if sealed:
            pairs = [(hour, user) for hour, user in pairs if hour in pending]
        await self.add((hour, user, None) for hour, user in pairs)
        async with unit_of_work(session_factory) as session:
            await repository.sketches_written(session, pending)
        if not sealed:
            await self.redis.set(self.seal_key, now.isoformat())
        hours = len({hour for hour, _ in pairs})
        log.info("reader sketches resealed", hours=hours, after_data_loss=not sealed)
        return hours

    async def add(self, readers: Iterable[tuple[datetime, uuid.UUID, uuid.UUID | None]]) -> None:
        """Idempotent: a reader added twice is counted once."""
        by_hour: dict[datetime, set[str]] = {}
        for hour, user_id, _book in readers:
            by_hour.setdefault(hour, set()).add(str(user_id))
        if not by_hour:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for hour, users in sorted(by_hour.items()):
                pipe.pfadd(self.key(hour), *sorted(users))
                pipe.expire(self.key(hour), READER_SKETCH_TTL)
            await pipe.execute()

    async def count(self, hours: Iterable[datetime]) -> int:
        return int(await self.redis.pfcount(*(self.key(h) for h in hours)))

    async def clear(self) -> None:
        keys = [key async for key in self.redis.scan_iter(match=self.prefix + "*")]
        if keys:
            await self.redis.delete(*keys)
