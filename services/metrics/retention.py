"""Metrics keeps a reading event's raw row for `METRICS_RAW_EVENT_DAYS` (90), then
only what it added to the figures (#41, README "Privacy").

A raw row says which reader did what with which book, to the second, and how
(the delivery method, the device's page count). No figure needs that much: each
holds per hour, or per reader and book, the sum of what the events added. So the
worker, every `METRICS_RETENTION_CHECK_SECONDS`, takes the reading events older
than the window off the log and adds what they had added into the folded tables
(models.py). The live figures are not touched, so no figure changes; a rebuild
starts from the folded tables and replays what the log still holds, and gets the
same figures, because the projection's writes commute (counters add, times keep
the earliest or the latest, the furthest page wins).

Each row leaves the log in the statement that hands it to the fold (DELETE ...
RETURNING), so two workers folding at once fold each row once. An event whose
xAPI statement the learning record store has not taken yet stays until it has.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.metrics import reading_repository, repository
from services.metrics.models import (
    FoldedHourlyCount,
    FoldedReaderHour,
    FoldedReading,
    RecordedEvent,
    XapiOutbox,
)
from services.metrics.projection import envelope_of
from services.metrics.projectors import BatchFigures, project
from services.metrics.settings import MetricsSettings
from shared.clients.db import unit_of_work
from shared.contracts.clock import now_utc
from shared.contracts.events import (
    DeliveryIssued,
    ReadingCompleted,
    ReadingOpened,
    ReadingProgressed,
    UserLoggedIn,
)
from shared.resources import Resources
from shared.service.periodic import every
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

# The events that are one reader's doing. Their projectors only add to the batch's
# figures (counts, reader hours, reading), never to an entity's state, which is
# what makes their sum all a rebuild needs. The rest (accounts, submissions,
# books, classes) is the platform's history, kept.
READING_EVENT_TYPES = tuple(
    event.type
    for event in (DeliveryIssued, ReadingOpened, ReadingProgressed, ReadingCompleted, UserLoggedIn)
)
BATCH = 5000


async def fold_reading_events(
    session: AsyncSession, before: datetime, *, limit: int = BATCH
) -> int:
    """Fold up to `limit` reading events that happened before `before`: their rows
    leave the log and what they added goes into the folded tables. How many."""
    log_table = repository.table(RecordedEvent)
    oldest = (
        select(RecordedEvent.event_id)
        .where(
            RecordedEvent.event_type.in_(READING_EVENT_TYPES),
            RecordedEvent.occurred_at < before,
            RecordedEvent.event_id.not_in(select(XapiOutbox.event_id)),
        )
        .order_by(RecordedEvent.occurred_at)
        .limit(limit)
    )
    removed = await session.execute(
        delete(log_table).where(log_table.c.event_id.in_(oldest)).returning(*log_table.c)
    )
    figures = BatchFigures()
    folded = 0
    for row in removed:
        await project(session, figures, envelope_of(row))
        folded += 1
    await repository.add_counts(session, dict(figures.counts), into=FoldedHourlyCount)
    await repository.add_reader_hours(session, figures.readers, into=FoldedReaderHour)
    await reading_repository.advance_reading(session, figures.reading, into=FoldedReading)
    return folded


async def keep_retention(
    resources: Resources, settings: ServiceSettings, stop: asyncio.Event
) -> None:
    """The worker's job: fold what is past `raw_event_days`, and say how much."""
    if not isinstance(settings, MetricsSettings):
        raise TypeError(f"the metrics worker needs MetricsSettings, not {type(settings).__name__}")

    async def step() -> bool:
        before = now_utc() - timedelta(days=settings.raw_event_days)
        async with unit_of_work(resources.session_factory) as session:
            folded = await fold_reading_events(session, before)
        if folded:
            log.info(
                "retention: raw reading events folded into the figures",
                events=folded,
                before=before.isoformat(),
            )
        return folded == BATCH

    await every(
        settings.retention_check_seconds, stop, step, failure="reading events not folded yet"
    )
