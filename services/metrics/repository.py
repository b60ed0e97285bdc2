"""Every SQL statement the metrics projection writes with (reads of the figures: queries.py).

Writes are upserts that commute: counters add, state columns keep the newest
(or first) value by the event's own time. So two workers applying batches at
once, a redelivery, or events out of order all end in the same rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.metrics.models import (
    Base,
    BookGrant,
    BookState,
    ClassAssignmentState,
    ClassMembership,
    ClassState,
    FoldedHourlyCount,
    FoldedReaderHour,
    FoldedReading,
    HourlyCount,
    ReaderHour,
    ReadingState,
    RecordedEvent,
    Review,
    SketchedHour,
    SubmissionState,
    TeacherLearner,
    UserState,
)
from shared.bus.read_models import NEVER, latest_wins
from shared.clients.db import upsert
from shared.contracts.envelope import Envelope
from shared.contracts.events import BookLineage

CountKey = tuple[str, str, datetime]  # metric, dimension, hour
DERIVED_TABLES = [
    HourlyCount,
    ReaderHour,
    UserState,
    SubmissionState,
    Review,
    BookState,
    BookGrant,
    TeacherLearner,
    SketchedHour,
    ReadingState,
    ClassState,
    ClassMembership,
    ClassAssignmentState,
]


def event_log_row(envelope: Envelope, received_at: datetime) -> dict[str, Any]:
    return {
        "event_id": envelope.id,
        "event_type": envelope.type,
        "dataversion": envelope.dataversion,
        "source": envelope.source,
        "subject": envelope.subject,
        "occurred_at": envelope.time,
        "received_at": received_at,
        "data": envelope.data,
    }


async def add_to_event_log(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """A batch's events in one statement (the inbox has made sure each is new)."""
    if rows:
        await session.execute(insert(table(RecordedEvent)).values(rows))


# --- writes ------------------------------------------------------------------------------


def table(model: type[Base]) -> Table:
    """A model's table: statements on it are plain Core, without the ORM's bulk paths
    (a fifth of the consumer's time when it wrote through the mapped classes)."""
    return cast(Table, model.__table__)


def is_newer(column: Any, candidate: Any) -> ColumnElement[bool]:
    return or_(column.is_(None), candidate > column)


def is_earlier(column: Any, candidate: Any) -> ColumnElement[bool]:
    return or_(column.is_(None), candidate < column)


def earliest(column: Any, candidate: Any) -> Any:
    """The earlier of a stored and a new time (either may be missing)."""
    return case(
        (and_(candidate.is_not(None), is_earlier(column, candidate)), candidate), else_=column
    )


def latest(column: Any, candidate: Any) -> Any:
    return case(
        (and_(candidate.is_not(None), is_newer(column, candidate)), candidate), else_=column
    )


async def add_counts(
    session: AsyncSession,
    counts: dict[CountKey, int],
    into: type[HourlyCount | FoldedHourlyCount] = HourlyCount,
) -> None:
    """Add to many counters in one statement, in key order (so concurrent batches
    lock the shared rows in the same order and cannot deadlock on them)."""
    if not counts:
        return
    statement = upsert(session, table(into)).values(
        [
            {"metric": m, "dimension": d, "hour": h, "count": n}
            for (m, d, h), n in sorted(counts.items())
        ]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["metric", "dimension", "hour"],
            set_={"count": into.count + statement.excluded.count},
        )
    )


async def add_reader_hours(
    session: AsyncSession,
    opens: Mapping[tuple[datetime, uuid.UUID, uuid.UUID], int],
    into: type[ReaderHour | FoldedReaderHour] = ReaderHour,
) -> None:
    rows = [
        {"hour": h, "user_id": u, "book_id": b, "opens": opens[(h, u, b)]}
        for h, u, b in sorted(opens)
    ]
    if rows:
        statement = upsert(session, table(into)).values(rows)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["hour", "user_id", "book_id"],
                set_={"opens": into.opens + statement.excluded.opens},
            )
        )


async def set_role(
    session: AsyncSession, user_id: uuid.UUID, role: str, at: datetime, *, registered: bool
) -> None:
    statement = upsert(session, table(UserState)).values(
        user_id=user_id, role=role, role_changed_at=at, registered_at=at if registered else None
    )
    new = statement.excluded
    newer = new.role_changed_at > UserState.role_changed_at
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["user_id"],
            set_={
                "role": case((newer, new.role), else_=UserState.role),
                "role_changed_at": case(
                    (newer, new.role_changed_at), else_=UserState.role_changed_at
                ),
                "registered_at": earliest(UserState.registered_at, new.registered_at),
            },
        )
    )


async def advance_submission(
    session: AsyncSession,
    submission_id: uuid.UUID,
    *,
    status: str,
    at: datetime,
    language: str | None = None,
    family_id: uuid.UUID | None = None,
    created: bool = False,
    submitted: bool = False,
    reviewed: bool = False,
    approved: bool = False,
    flags: list[str] | None = None,
) -> None:
    """A submission reached `status` at `at`; the newest status wins, each step's time
    keeps its first (or, for resubmission, last) occurrence, and the flags are its
    last submit's."""
    values = {
        "submission_id": submission_id,
        "language": language,
        "family_id": family_id,
        "status": status,
        "status_changed_at": at,
        "created_at": at if created else None,
        "first_submitted_at": at if submitted else None,
        "last_submitted_at": at if submitted else None,
        "first_reviewed_at": at if reviewed else None,
        "approved_at": at if approved else None,
        "flags": None if flags is None else ",".join(flags),
    }
    statement = upsert(session, table(SubmissionState)).values(values)
    new = statement.excluded
    newer = new.status_changed_at > SubmissionState.status_changed_at
    s = SubmissionState
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["submission_id"],
            set_={
                "language": func.coalesce(new.language, s.language),
                "family_id": func.coalesce(new.family_id, s.family_id),
                "status": case((newer, new.status), else_=s.status),
                "status_changed_at": case(
                    (newer, new.status_changed_at), else_=s.status_changed_at
                ),
                "created_at": earliest(s.created_at, new.created_at),
                "first_submitted_at": earliest(s.first_submitted_at, new.first_submitted_at),
                "last_submitted_at": latest(s.last_submitted_at, new.last_submitted_at),
                "first_reviewed_at": earliest(s.first_reviewed_at, new.first_reviewed_at),
                "approved_at": earliest(s.approved_at, new.approved_at),
                "flags": case(
                    (
                        and_(
                            new.flags.is_not(None),
                            or_(
                                s.last_submitted_at.is_(None),
                                new.last_submitted_at >= s.last_submitted_at,
                            ),
                        ),
                        new.flags,
                    ),
                    else_=s.flags,
                ),
            },
        )
    )


async def add_review(
    session: AsyncSession,
    event_id: uuid.UUID,
    submission_id: uuid.UUID,
    decision: str,
    at: datetime,
    seconds_waited: float,
) -> None:
    await session.execute(
        upsert(session, table(Review))
        .values(
            event_id=event_id,
            submission_id=submission_id,
            decision=decision,
            decided_at=at,
            seconds_waited=seconds_waited,
        )
        .on_conflict_do_nothing()
    )


async def change_book(
    session: AsyncSession,
    book_id: uuid.UUID,
    *,
    at: datetime,
    published: bool | None = None,
    submission_id: uuid.UUID | None = None,
    language: str | None = None,
    lineage: BookLineage | None = None,
    title: str | None = None,
) -> None:
    """What is known of a book: its origin, title, language and family whenever told,
    whether it is published from the newest event that says so."""
    statement = upsert(session, table(BookState)).values(
        book_id=book_id,
        submission_id=submission_id,
        title=title,
        language=language,
        family_id=lineage.family_id if lineage else None,
        reading_level=lineage.reading_level if lineage else None,
        derivation=lineage.derivation if lineage else None,
        published=bool(published),
        # An event that says nothing of publication must never win over one that does.
        state_changed_at=at if published is not None else NEVER,
        first_published_at=at if published else None,
    )
    new = statement.excluded
    b = BookState
    newer = latest_wins(new.state_changed_at, b.state_changed_at)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["book_id"],
            set_={
                "submission_id": func.coalesce(new.submission_id, b.submission_id),
                "title": func.coalesce(new.title, b.title),
                "language": func.coalesce(new.language, b.language),
                "family_id": func.coalesce(new.family_id, b.family_id),
                "reading_level": func.coalesce(new.reading_level, b.reading_level),
                "derivation": func.coalesce(new.derivation, b.derivation),
                "published": case((newer, new.published), else_=b.published),
                "state_changed_at": case((newer, new.state_changed_at), else_=b.state_changed_at),
                "first_published_at": earliest(b.first_published_at, new.first_published_at),
            },
        )
    )


async def add_grant(
    session: AsyncSession, teacher_id: uuid.UUID, book_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    await session.execute(
        upsert(session, table(BookGrant))
        .values(teacher_id=teacher_id, book_id=book_id)
        .on_conflict_do_nothing()
    )
    await session.execute(
        upsert(session, table(TeacherLearner))
        .values(teacher_id=teacher_id, book_id=book_id, user_id=user_id)
        .on_conflict_do_nothing()
    )


# What the retention job folded (retention.py), and the live table each adds to.
FOLDED_INTO = (
    (FoldedHourlyCount, HourlyCount),
    (FoldedReaderHour, ReaderHour),
    (FoldedReading, ReadingState),
)


async def clear_derived(session: AsyncSession) -> None:
    for table in DERIVED_TABLES:
        await session.execute(delete(table))


async def restore_folded(session: AsyncSession) -> None:
    """A rebuild's start, once `clear_derived` has emptied the live tables: what the
    reading events no longer in the log had added."""
    for folded, live in FOLDED_INTO:
        columns = [column.name for column in table(live).c]
        source = select(*(table(folded).c[name] for name in columns))
        await session.execute(insert(table(live)).from_select(columns, source))


async def event_log_page(
    session: AsyncSession, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> Sequence[RecordedEvent]:
    """The log in the order events happened (ties by id), one page at a time."""
    query = select(RecordedEvent).order_by(RecordedEvent.occurred_at, RecordedEvent.event_id)
    if after is not None:
        at, event_id = after
        query = query.where(
            or_(
                RecordedEvent.occurred_at > at,
                and_(RecordedEvent.occurred_at == at, RecordedEvent.event_id > event_id),
            )
        )
    return (await session.scalars(query.limit(limit))).all()


async def mark_sketches_pending(session: AsyncSession, hours: Iterable[datetime]) -> None:
    """In the batch's own transaction: these hours' sketches wait for this batch."""
    rows = [{"hour": hour, "pending": 1} for hour in sorted(set(hours))]
    if rows:
        statement = upsert(session, table(SketchedHour)).values(rows)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["hour"], set_={"pending": SketchedHour.pending + 1}
            )
        )


async def sketches_written(session: AsyncSession, pending: Mapping[datetime, int]) -> None:
    """These batches' (or a reseal's) sketch writes are confirmed."""
    for hour, done in pending.items():
        await session.execute(
            update(SketchedHour)
            .where(SketchedHour.hour == hour)
            .values(
                pending=case((SketchedHour.pending > done, SketchedHour.pending - done), else_=0)
            )
        )


async def unsealed_hours(session: AsyncSession, since: datetime) -> dict[datetime, int]:
    rows = await session.execute(
        select(SketchedHour.hour, SketchedHour.pending).where(
            SketchedHour.hour >= since, SketchedHour.pending > 0
        )
    )
    return {hour: int(pending) for hour, pending in rows}
