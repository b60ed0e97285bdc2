"""Every SQL statement the metrics projection writes with (reads of the figures: queries.py).

Writes are upserts that commute: counters add, state columns keep the newest
(or first) value by the event's own time. So two workers applying batches at
once, a redelivery, or events out of order all end in the same rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
from shared.clients.db import upsert
from shared.contracts.events import BookLineage, Envelope

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


def _newer(column: Any, candidate: Any) -> ColumnElement[bool]:
    return or_(column.is_(None), candidate > column)


def _earlier(column: Any, candidate: Any) -> ColumnElement[bool]:
    return or_(column.is_(None), candidate < column)


def _first(column: Any, candidate: Any) -> Any:
    """The earlier of a stored and a new time (either may be missing)."""
    return case(
        (and_(candidate.is_not(None), _earlier(column, candidate)), candidate), else_=column
    )


def _last(column: Any, candidate: Any) -> Any:
    return case((and_(candidate.is_not(None), _newer(column, candidate)), candidate), else_=column)


async def add_counts(session: AsyncSession, counts: dict[CountKey, int]) -> None:
    """Add to many counters in one statement, in key order (so concurrent batches
    lock the shared rows in the same order and cannot deadlock on them)."""
    if not counts:
        return
    statement = upsert(session, table(HourlyCount)).values(
        [
            {"metric": m, "dimension": d, "hour": h, "count": n}
            for (m, d, h), n in sorted(counts.items())
        ]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["metric", "dimension", "hour"],
            set_={"count": HourlyCount.count + statement.excluded.count},
        )
    )


async def add_reader_hours(
    session: AsyncSession, opens: Mapping[tuple[datetime, uuid.UUID, uuid.UUID], int]
) -> None:
    rows = [
        {"hour": h, "user_id": u, "book_id": b, "opens": opens[(h, u, b)]}
        for h, u, b in sorted(opens)
    ]
    if rows:
        statement = upsert(session, table(ReaderHour)).values(rows)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["hour", "user_id", "book_id"],
                set_={"opens": ReaderHour.opens + statement.excluded.opens},
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
                "registered_at": _first(UserState.registered_at, new.registered_at),
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
) -> None:
    """A submission reached `status` at `at`; the newest status wins, each step's time
    keeps its first (or, for resubmission, last) occurrence."""
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
                "created_at": _first(s.created_at, new.created_at),
                "first_submitted_at": _first(s.first_submitted_at, new.first_submitted_at),
                "last_submitted_at": _last(s.last_submitted_at, new.last_submitted_at),
                "first_reviewed_at": _first(s.first_reviewed_at, new.first_reviewed_at),
                "approved_at": _first(s.approved_at, new.approved_at),
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
        state_changed_at=at if published is not None else datetime.min.replace(tzinfo=UTC),
        first_published_at=at if published else None,
    )
    new = statement.excluded
    b = BookState
    newer = new.state_changed_at > b.state_changed_at
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
                "first_published_at": _first(b.first_published_at, new.first_published_at),
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


def learners_of(teacher_id: uuid.UUID, book_id: uuid.UUID) -> Any:
    """The readers a teacher's figures for a book count: those they granted it to."""
    return select(TeacherLearner.user_id).where(
        TeacherLearner.teacher_id == teacher_id, TeacherLearner.book_id == book_id
    )


async def opens_of_readers(
    session: AsyncSession,
    book_id: uuid.UUID,
    readers: Any,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[tuple[datetime, int]]:
    """(hour, opens) of one book by the given readers (a subquery of user ids)."""
    query = (
        select(ReaderHour.hour, func.sum(ReaderHour.opens))
        .where(ReaderHour.book_id == book_id, ReaderHour.user_id.in_(readers))
        .group_by(ReaderHour.hour)
    )
    if since is not None:
        query = query.where(ReaderHour.hour >= since)
    if until is not None:
        query = query.where(ReaderHour.hour < until)
    return [(hour, int(n)) for hour, n in await session.execute(query)]


async def completions_of_readers(
    session: AsyncSession, book_id: uuid.UUID, readers: Any, since: datetime, until: datetime
) -> list[datetime]:
    """When each of the given readers finished one book, within a window."""
    query = select(ReadingState.completed_at).where(
        ReadingState.book_id == book_id,
        ReadingState.user_id.in_(readers),
        ReadingState.completed_at >= since,
        ReadingState.completed_at < until,
    )
    return [at for at in await session.scalars(query) if at is not None]


ReadingKey = tuple[uuid.UUID, uuid.UUID]  # user, book


@dataclass
class ReadingStep:
    """What one batch of events tells of one reader and one book."""

    page: int = 0
    total_pages: int | None = None  # no page announced in this batch
    completed_at: datetime | None = None
    opens: int = 0
    first_opened_at: datetime | None = None
    last_read_at: datetime | None = None

    def merge(
        self,
        *,
        at: datetime,
        page: int | None = None,
        total_pages: int | None = None,
        completed: bool = False,
        opened: bool = False,
    ) -> None:
        if total_pages is not None and (self.total_pages is None or (page or 0) > self.page):
            self.page, self.total_pages = page or 0, total_pages
        if completed and (self.completed_at is None or at < self.completed_at):
            self.completed_at = at
        if opened:
            self.opens += 1
            if self.first_opened_at is None or at < self.first_opened_at:
                self.first_opened_at = at
        if self.last_read_at is None or at > self.last_read_at:
            self.last_read_at = at


async def advance_reading(session: AsyncSession, steps: dict[ReadingKey, ReadingStep]) -> None:
    """The furthest page wins (any page beats none); completion keeps its first time
    and means the last page; opens add up; the first open and the last activity
    keep the earliest and the latest time. One statement for a whole batch (its
    steps already merged per reader and book)."""
    if not steps:
        return
    statement = upsert(session, table(ReadingState)).values(
        [
            {
                "user_id": user_id,
                "book_id": book_id,
                "page": step.page,
                "total_pages": step.total_pages,
                "completed_at": step.completed_at,
                "opens": step.opens,
                "first_opened_at": step.first_opened_at,
                "last_read_at": step.last_read_at,
            }
            for (user_id, book_id), step in sorted(steps.items())
        ]
    )
    new = statement.excluded
    r = ReadingState
    further = and_(new.total_pages.is_not(None), or_(r.total_pages.is_(None), new.page > r.page))
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["user_id", "book_id"],
            set_={
                "page": case((further, new.page), else_=r.page),
                "total_pages": case((further, new.total_pages), else_=r.total_pages),
                "completed_at": _first(r.completed_at, new.completed_at),
                "opens": r.opens + new.opens,
                "first_opened_at": _first(r.first_opened_at, new.first_opened_at),
                "last_read_at": _last(r.last_read_at, new.last_read_at),
            },
        )
    )


# --- classes (#19) ------------------------------------------------------------------------


async def know_class(session: AsyncSession, class_id: uuid.UUID, teacher_id: uuid.UUID) -> None:
    await session.execute(
        upsert(session, table(ClassState))
        .values(class_id=class_id, teacher_id=teacher_id)
        .on_conflict_do_nothing()
    )


async def set_membership(
    session: AsyncSession,
    at: datetime,
    *,
    class_id: uuid.UUID | None,
    user_id: uuid.UUID,
    member: bool,
) -> None:
    """Join or leave one class; the newest event wins. `class_id=None`: leave every
    class the learner is in (their account was erased)."""
    if class_id is None:
        await session.execute(
            update(ClassMembership)
            .where(ClassMembership.user_id == user_id, ClassMembership.changed_at < at)
            .values(member=False, changed_at=at)
        )
        return
    statement = upsert(session, table(ClassMembership)).values(
        class_id=class_id, user_id=user_id, member=member, changed_at=at
    )
    new = statement.excluded
    newer = new.changed_at > ClassMembership.changed_at
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["class_id", "user_id"],
            set_={
                "member": case((newer, new.member), else_=ClassMembership.member),
                "changed_at": case((newer, new.changed_at), else_=ClassMembership.changed_at),
            },
        )
    )


async def set_assignment(
    session: AsyncSession,
    at: datetime,
    *,
    assignment_id: uuid.UUID,
    class_id: uuid.UUID,
    book_id: uuid.UUID,
    due_at: datetime | None = None,
    removed: bool = False,
) -> None:
    """An assignment made or taken back, in either order: once removed it stays so."""
    statement = upsert(session, table(ClassAssignmentState)).values(
        assignment_id=assignment_id,
        class_id=class_id,
        book_id=book_id,
        due_at=due_at,
        assigned_at=None if removed else at,
        removed_at=at if removed else None,
    )
    new, a = statement.excluded, ClassAssignmentState
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["assignment_id"],
            set_={
                "due_at": case((new.assigned_at.is_not(None), new.due_at), else_=a.due_at),
                "assigned_at": _first(a.assigned_at, new.assigned_at),
                "removed_at": _first(a.removed_at, new.removed_at),
            },
        )
    )


async def clear_derived(session: AsyncSession) -> None:
    for table in DERIVED_TABLES:
        await session.execute(delete(table))


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
