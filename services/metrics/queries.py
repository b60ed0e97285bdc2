"""Every SQL statement that reads the figures (the projection's writes: repository.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    case,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.metrics.models import (
    BookGrant,
    BookState,
    ClassAssignmentState,
    ClassMembership,
    ClassState,
    HourlyCount,
    ReaderHour,
    ReadingState,
    Review,
    SubmissionState,
    UserState,
)


async def count_sum(
    session: AsyncSession, metric: str, dimension: str, since: datetime, until: datetime
) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(HourlyCount.count), 0)).where(
            HourlyCount.metric == metric,
            HourlyCount.dimension == dimension,
            HourlyCount.hour >= since,
            HourlyCount.hour < until,
        )
    )
    return int(total or 0)


async def most_read_books(
    session: AsyncSession, since: datetime, limit: int
) -> list[tuple[uuid.UUID, int, int]]:
    """The books read by the most readers since `since`: (book, distinct readers,
    opens), every way of opening counted. Ranked by readers, not opens: one reader
    opening a book a thousand times is one reader (#37 F10)."""
    readers = func.count(func.distinct(ReaderHour.user_id))
    opens = func.sum(ReaderHour.opens)
    rows = await session.execute(
        select(ReaderHour.book_id, readers, opens)
        .where(ReaderHour.hour >= since)
        .group_by(ReaderHour.book_id)
        .order_by(readers.desc(), opens.desc(), ReaderHour.book_id)
        .limit(limit)
    )
    return [(row[0], int(row[1]), int(row[2] or 0)) for row in rows.all()]


async def count_series(
    session: AsyncSession, metric: str, dimension: str, since: datetime, until: datetime
) -> list[tuple[datetime, int]]:
    rows = await session.execute(
        select(HourlyCount.hour, HourlyCount.count).where(
            HourlyCount.metric == metric,
            HourlyCount.dimension == dimension,
            HourlyCount.hour >= since,
            HourlyCount.hour < until,
        )
    )
    return [(hour, int(count)) for hour, count in rows]


async def reader_pairs(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    book_id: uuid.UUID | None = None,
    readers: Any = None,
) -> list[tuple[datetime, uuid.UUID]]:
    """(hour, reader) pairs in a window: distinct readers per bucket are counted from them."""
    query = (
        select(ReaderHour.hour, ReaderHour.user_id)
        .where(ReaderHour.hour >= since, ReaderHour.hour < until)
        .distinct()
    )
    if book_id is not None:
        query = query.where(ReaderHour.book_id == book_id)
    if readers is not None:
        query = query.where(ReaderHour.user_id.in_(readers))
    return [(hour, user) for hour, user in await session.execute(query)]


async def distinct_readers(
    session: AsyncSession,
    since: datetime | None = None,
    until: datetime | None = None,
    book_id: uuid.UUID | None = None,
    readers: Any = None,
) -> int:
    query = select(func.count(func.distinct(ReaderHour.user_id)))
    if readers is not None:
        query = query.where(ReaderHour.user_id.in_(readers))
    if since is not None:
        query = query.where(ReaderHour.hour >= since)
    if until is not None:
        query = query.where(ReaderHour.hour < until)
    if book_id is not None:
        query = query.where(ReaderHour.book_id == book_id)
    return int(await session.scalar(query) or 0)


async def users_by_role(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(UserState.role, func.count()).group_by(UserState.role))
    return {role: int(n) for role, n in rows}


async def submissions_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(SubmissionState.status, func.count()).group_by(SubmissionState.status)
    )
    return {status: int(n) for status, n in rows}


async def published_books(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(BookState).where(BookState.published.is_(True))
        )
        or 0
    )


async def funnel(session: AsyncSession) -> dict[str, int]:
    s = SubmissionState
    row = (
        await session.execute(
            select(
                func.count(s.created_at),
                func.count(s.first_submitted_at),
                func.count(s.first_reviewed_at),
                func.count(s.approved_at),
            )
        )
    ).one()
    published = await session.scalar(
        select(func.count(func.distinct(BookState.submission_id))).where(
            BookState.first_published_at.is_not(None), BookState.submission_id.is_not(None)
        )
    )
    created, submitted, reviewed, approved = (int(n) for n in row)
    return {
        "created": created,
        "submitted": submitted,
        "reviewed": reviewed,
        "approved": approved,
        "published": int(published or 0),
    }


async def review_waits(session: AsyncSession) -> list[float]:
    return [float(s) for s in await session.scalars(select(Review.seconds_waited))]


async def approval_to_publication(session: AsyncSession) -> list[float]:
    """Seconds from each submission's approval to its book's first publication."""
    rows = await session.execute(
        select(SubmissionState.approved_at, func.min(BookState.first_published_at))
        .join(BookState, BookState.submission_id == SubmissionState.submission_id)
        .where(SubmissionState.approved_at.is_not(None), BookState.first_published_at.is_not(None))
        .group_by(SubmissionState.submission_id, SubmissionState.approved_at)
    )
    return [
        (published - approved).total_seconds()
        for approved, published in rows
        if approved is not None and published is not None
    ]


async def oldest_waiting_review(session: AsyncSession, limit: int) -> Sequence[Any]:
    s = SubmissionState
    rows = await session.execute(
        select(s.submission_id, s.language, s.last_submitted_at, s.flags)
        .where(s.status == "SUBMITTED", s.last_submitted_at.is_not(None))
        .order_by(s.last_submitted_at, s.submission_id)
        .limit(limit)
    )
    return rows.all()


async def oldest_waiting_publication(session: AsyncSession, limit: int) -> Sequence[Any]:
    """Approved submissions whose book has not been published yet (or has no book yet)."""
    s = SubmissionState
    published = (
        select(BookState.submission_id)
        .where(BookState.first_published_at.is_not(None), BookState.submission_id.is_not(None))
        .scalar_subquery()
    )
    rows = await session.execute(
        select(s.submission_id, s.language, s.approved_at)
        .where(
            s.status == "APPROVED", s.approved_at.is_not(None), s.submission_id.not_in(published)
        )
        .order_by(s.approved_at, s.submission_id)
        .limit(limit)
    )
    return rows.all()


async def book_known(session: AsyncSession, book_id: uuid.UUID) -> bool:
    return await session.get(BookState, book_id) is not None


# How far a reader got, 0..1: a finished book is whole; no page announced is none.
PROGRESS = case(
    (ReadingState.completed_at.is_not(None), 1.0),
    (ReadingState.total_pages.is_(None), 0.0),
    (ReadingState.page >= ReadingState.total_pages, 1.0),
    else_=ReadingState.page * 1.0 / ReadingState.total_pages,
)


async def reading_of_book(
    session: AsyncSession, book_id: uuid.UUID, readers: Any = None
) -> tuple[int, int, float]:
    """Readers with progress, how many completed, and their mean progress (0..1).
    (A reader who only opened the book has no progress yet and is not counted.)"""
    r = ReadingState
    row = (
        await session.execute(
            select(func.count(), func.count(r.completed_at), func.avg(PROGRESS)).where(
                r.book_id == book_id,
                or_(r.total_pages.is_not(None), r.completed_at.is_not(None)),
                true() if readers is None else r.user_id.in_(readers),
            )
        )
    ).one()
    readers, completed, mean = row
    return int(readers), int(completed), float(mean or 0.0)


async def granted_by(session: AsyncSession, teacher_id: uuid.UUID, book_id: uuid.UUID) -> bool:
    return await session.get(BookGrant, (teacher_id, book_id)) is not None


# --- story families and languages ------------------------------------------------------

IN_REVIEW_STATUSES = ("SUBMITTED", "CHANGES_REQUESTED", "APPROVED")


async def opens_by_book(session: AsyncSession, opens_metric: str) -> dict[uuid.UUID, int]:
    """Every book's opens, ever (from the per-book counters)."""
    rows = await session.execute(
        select(HourlyCount.dimension, func.sum(HourlyCount.count))
        .where(HourlyCount.metric == opens_metric, HourlyCount.dimension.startswith("book:"))
        .group_by(HourlyCount.dimension)
    )
    return {uuid.UUID(dimension.removeprefix("book:")): int(n) for dimension, n in rows}


async def known_books(session: AsyncSession) -> Sequence[BookState]:
    return (await session.scalars(select(BookState))).all()


async def readers_by(session: AsyncSession, column: Any) -> dict[Any, int]:
    """Distinct readers, ever, of the books grouped by a column of BookState."""
    rows = await session.execute(
        select(column, func.count(func.distinct(ReaderHour.user_id)))
        .join(BookState, BookState.book_id == ReaderHour.book_id)
        .where(column.is_not(None))
        .group_by(column)
    )
    return {key: int(n) for key, n in rows}


async def completions_by(session: AsyncSession, column: Any) -> dict[Any, int]:
    """Readers who finished a book, ever, over the books grouped by a column of BookState."""
    rows = await session.execute(
        select(column, func.count())
        .select_from(ReadingState)
        .join(BookState, BookState.book_id == ReadingState.book_id)
        .where(ReadingState.completed_at.is_not(None), column.is_not(None))
        .group_by(column)
    )
    return {key: int(n) for key, n in rows}


async def families_in_review(session: AsyncSession) -> list[tuple[uuid.UUID, str]]:
    """(family, language) of every submission of a known family in the review workflow."""
    s = SubmissionState
    rows = await session.execute(
        select(s.family_id, s.language)
        .where(s.family_id.is_not(None), s.language.is_not(None))
        .where(s.status.in_(IN_REVIEW_STATUSES))
        .distinct()
    )
    return [(family, language) for family, language in rows if family and language]


async def overdue_reviews(session: AsyncSession, waiting_since: datetime) -> int:
    """Submissions waiting for a decision since before `waiting_since`."""
    s = SubmissionState
    return int(
        await session.scalar(
            select(func.count()).where(s.status == "SUBMITTED", s.last_submitted_at < waiting_since)
        )
        or 0
    )


# --- classes (#19) ---------------------------------------------------------------------


async def school_class(session: AsyncSession, class_id: uuid.UUID) -> ClassState | None:
    return await session.get(ClassState, class_id)


async def class_learners(session: AsyncSession, class_id: uuid.UUID) -> list[uuid.UUID]:
    m = ClassMembership
    rows = await session.scalars(
        select(m.user_id).where(m.class_id == class_id, m.member.is_(True)).order_by(m.user_id)
    )
    return list(rows)


async def class_assignments(
    session: AsyncSession, class_id: uuid.UUID
) -> list[tuple[ClassAssignmentState, str | None]]:
    """The class's live assignments with their books' titles, oldest first."""
    a = ClassAssignmentState
    rows = await session.execute(
        select(a, BookState.title)
        .outerjoin(BookState, BookState.book_id == a.book_id)
        .where(a.class_id == class_id, a.removed_at.is_(None), a.assigned_at.is_not(None))
        .order_by(a.assigned_at, a.assignment_id)
    )
    return [(assignment, title) for assignment, title in rows.all()]


async def reading_of(
    session: AsyncSession, readers: list[uuid.UUID], books: list[uuid.UUID]
) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[ReadingState, float]]:
    """(reader, book) -> the reading row and its progress (0..1), for those that exist."""
    if not readers or not books:
        return {}
    r = ReadingState
    rows = await session.execute(
        select(r, PROGRESS).where(r.user_id.in_(readers), r.book_id.in_(books))
    )
    return {(row.user_id, row.book_id): (row, float(p)) for row, p in rows.all()}
