"""The statements the projection writes reading and classes with: who may be counted
for a teacher's book, each reader's state in a book, a class's members and books.

As in repository.py, every write is an upsert that commutes: times keep the first
or the latest value by the event's own time, so redeliveries and events out of
order end in the same rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.metrics.models import (
    ClassAssignmentState,
    ClassMembership,
    ClassState,
    FoldedReading,
    ReaderHour,
    ReadingState,
    TeacherLearner,
)
from services.metrics.repository import earliest, latest, table
from shared.clients.db import upsert


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


async def advance_reading(
    session: AsyncSession,
    steps: dict[ReadingKey, ReadingStep],
    into: type[ReadingState | FoldedReading] = ReadingState,
) -> None:
    """The furthest page wins (any page beats none); completion keeps its first time
    and means the last page; opens add up; the first open and the last activity
    keep the earliest and the latest time. One statement for a whole batch (its
    steps already merged per reader and book)."""
    if not steps:
        return
    statement = upsert(session, table(into)).values(
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
    r = into
    further = and_(new.total_pages.is_not(None), or_(r.total_pages.is_(None), new.page > r.page))
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["user_id", "book_id"],
            set_={
                "page": case((further, new.page), else_=r.page),
                "total_pages": case((further, new.total_pages), else_=r.total_pages),
                "completed_at": earliest(r.completed_at, new.completed_at),
                "opens": r.opens + new.opens,
                "first_opened_at": earliest(r.first_opened_at, new.first_opened_at),
                "last_read_at": latest(r.last_read_at, new.last_read_at),
            },
        )
    )


# The classes (#19): a class, its members, its assigned books.


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
                "assigned_at": earliest(a.assigned_at, new.assigned_at),
                "removed_at": earliest(a.removed_at, new.removed_at),
            },
        )
    )
