"""Metrics' raw reading events reduced to what they added, on both databases (#41).

A month of scripted events is projected (a rebuild of the log, the projection's own
path); then the retention fold takes every reading event older than the cutoff off
the log. Every table a figure is read from must hold exactly what it held before,
the log must have lost those rows and no others, and a rebuild from what is left
must give the same tables again. (tests/metrics/test_metrics.py checks the same
through the API, with the worker's job.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from services.metrics import repository
from services.metrics.main import SERVICE as METRICS
from services.metrics.models import (
    FoldedReaderHour,
    FoldedReading,
    RecordedEvent,
    SketchedHour,
)
from services.metrics.projection import rebuild
from services.metrics.retention import READING_EVENT_TYPES, fold_reading_events
from services.metrics.settings import MetricsSettings
from services.metrics.xapi import add_to_outbox
from shared.clients.db import drop_schema
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    BookPublished,
    DeliveryIssued,
    EventData,
    ReadingCompleted,
    ReadingOpened,
    ReadingProgressed,
    UserLoggedIn,
    UserRegistered,
)
from shared.contracts.roles import Role
from shared.resources import Resources, open_resources
from shared.service.migrations import upgrade
from tests.conftest import make_settings
from tests.support import original_lineage

DAY = timedelta(days=1)
NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
CUTOFF = NOW - 30 * DAY


@pytest.fixture
async def metrics_db(either_database_url: str, moto_url: str) -> AsyncIterator[Resources]:
    url = either_database_url
    settings = make_settings(MetricsSettings, database_url=url, moto_url=moto_url)
    await upgrade(METRICS.migrations, settings.database_url, settings.database_schema)
    try:
        async with AsyncExitStack() as stack:
            yield await open_resources(settings, stack)
    finally:
        await drop_schema(settings.database_url, settings.database_schema)


def history() -> list[Envelope]:
    """Three readers and two books over 60 days, on both sides of the cutoff: opens
    online and offline, pages forward and back, completions, sign-ins; and the
    platform's own history (accounts, a book), which is kept."""
    readers = [uuid.uuid4() for _ in range(3)]
    books = [uuid.uuid4() for _ in range(2)]
    events: list[Envelope] = []

    def at(moment: datetime, data: EventData) -> None:
        events.append(Envelope.wrap(data, time=moment))

    for book in books:
        at(NOW - 60 * DAY, BookPublished(
            book_id=book, object_key=f"books/{book}.pdf", object_version="v1",
            access="free", language="sw", **original_lineage(book),
        ))  # fmt: skip
    for n, reader in enumerate(readers):
        at(NOW - (59 - n) * DAY, UserRegistered(user_id=reader, role=Role.LEARNER))
        for day in range(58, -1, -3 - n):  # every few days, to today
            moment = NOW - day * DAY + n * timedelta(minutes=7)
            book = books[(day + n) % 2]
            at(moment, UserLoggedIn(user_id=reader, role=Role.LEARNER))
            if day % 2:
                at(moment, ReadingOpened(book_id=book, user_id=reader))
            else:
                at(moment, DeliveryIssued(book_id=book, user_id=reader, method="s3"))
            # Pages go up with time, but one old page comes after a newer one.
            page = min(12, (60 - day) // 5 + n)
            at(moment, ReadingProgressed(book_id=book, user_id=reader, page=page, total_pages=12))
            if page == 12:
                at(moment, ReadingCompleted(book_id=book, user_id=reader))
    return events


async def log_and_project(resources: Resources, envelopes: list[Envelope]) -> None:
    async with resources.session_factory() as session:
        rows = [repository.event_log_row(e, NOW) for e in envelopes]
        for start in range(0, len(rows), 200):
            await repository.add_to_event_log(session, rows[start : start + 200])
        await session.commit()
    async with resources.session_factory() as session:
        await rebuild(session, resources)


async def figure_tables(resources: Resources) -> dict[str, list[tuple[Any, ...]]]:
    """Every table a figure is read from, row by row (the sketches' bookkeeping is
    not a figure: a rebuild resets it and the worker reseals)."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with resources.session_factory() as session:
        for model in repository.DERIVED_TABLES:
            if model is SketchedHour:
                continue
            rows = (await session.execute(select(repository.table(model)))).all()
            tables[model.__tablename__] = sorted((tuple(row) for row in rows), key=repr)
    return tables


async def logged(resources: Resources) -> dict[uuid.UUID, RecordedEvent]:
    async with resources.session_factory() as session:
        return {e.event_id: e for e in (await session.scalars(select(RecordedEvent))).all()}


async def fold_all(resources: Resources, before: datetime, limit: int = 20) -> int:
    folded = 0
    while True:
        async with resources.session_factory() as session:
            n = await fold_reading_events(session, before, limit=limit)
            await session.commit()
        folded += n
        if n < limit:
            return folded


async def test_folding_old_reading_events_changes_no_figure(metrics_db: Resources) -> None:
    events = history()
    await log_and_project(metrics_db, events)
    before = await figure_tables(metrics_db)
    assert before["reading"]
    assert before["reader_hours"]
    assert before["hourly_counts"]
    # One old event's xAPI statement has not gone to the LRS yet: it stays for now.
    waiting = next(
        e for e in events if e.type == ReadingProgressed.type and e.time < CUTOFF - 10 * DAY
    )
    async with metrics_db.session_factory() as session:
        await add_to_outbox(session, [{"event_id": waiting.id, "occurred_at": waiting.time}])
        await session.commit()

    folded = await fold_all(metrics_db, CUTOFF)  # in batches of 20

    old_reading = {e.id for e in events if e.type in READING_EVENT_TYPES and e.time < CUTOFF}
    assert folded == len(old_reading) - 1
    assert folded > 60
    kept = await logged(metrics_db)
    assert set(kept) == {e.id for e in events} - old_reading | {waiting.id}
    assert await figure_tables(metrics_db) == before
    assert await fold_all(metrics_db, CUTOFF) == 0  # nothing is folded twice

    # The log's remains and the folded rows rebuild every figure as it was.
    async with metrics_db.session_factory() as session:
        assert await rebuild(session, metrics_db) == len(kept)
    assert await figure_tables(metrics_db) == before

    # An old event uploaded late (an offline device) is counted, then folds too.
    late = Envelope.wrap(
        ReadingOpened(book_id=uuid.uuid4(), user_id=uuid.uuid4()), time=CUTOFF - 40 * DAY
    )
    await log_and_project(metrics_db, [late])
    with_late = await figure_tables(metrics_db)
    assert with_late != before
    assert await fold_all(metrics_db, CUTOFF) == 1
    async with metrics_db.session_factory() as session:
        await rebuild(session, metrics_db)
    assert await figure_tables(metrics_db) == with_late


async def test_what_is_folded_names_only_its_own_reader(metrics_db: Resources) -> None:
    """The folded rows are the live rows' share, per reader: a person's export reads
    them by their id (data_export.py) and finds nobody else's."""
    events = history()
    await log_and_project(metrics_db, events)
    await fold_all(metrics_db, CUTOFF)
    reader = next(uuid.UUID(e.data["user_id"]) for e in events if e.type == DeliveryIssued.type)
    async with metrics_db.session_factory() as session:
        for model in (FoldedReading, FoldedReaderHour):
            users = set((await session.scalars(select(model.user_id))).all())
            assert len(users) == 3
            mine = await session.scalar(
                select(func.count()).select_from(model).where(model.user_id == reader)
            )
            assert mine


async def test_two_workers_folding_at_once_fold_each_event_once(
    metrics_db: Resources,
) -> None:
    await log_and_project(metrics_db, history())
    before = await figure_tables(metrics_db)
    folds = await asyncio.gather(*(fold_all(metrics_db, CUTOFF, limit=10) for _ in range(2)))
    async with metrics_db.session_factory() as session:
        remaining = await session.scalar(
            select(func.count())
            .select_from(RecordedEvent)
            .where(
                RecordedEvent.event_type.in_(READING_EVENT_TYPES),
                RecordedEvent.occurred_at < CUTOFF,
            )
        )
        assert remaining == 0
        assert sum(folds) > 60
        await rebuild(session, metrics_db)
    assert await figure_tables(metrics_db) == before
