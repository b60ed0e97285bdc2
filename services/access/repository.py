"""Every SQL statement of the access service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.access.models import (
    AuditEntry,
    CatalogBook,
    ClassAssignment,
    ClassMember,
    DataExport,
    Entitlement,
    RefreshToken,
    SchoolClass,
    User,
)
from shared.contracts.roles import Role
from shared.http.pagination import after_cursor


class AccessRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- users ----------------------------------------------------------------------

    async def user(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
        query = select(User).where(User.id == user_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def user_by_email(self, email: str) -> User | None:
        return await self.session.scalar(select(User).where(User.email == email))

    async def users(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
        if not ids:
            return {}
        rows = await self.session.scalars(select(User).where(User.id.in_(ids)))
        return {u.id: u for u in rows}

    def add(self, row: Any) -> None:
        self.session.add(row)

    async def delete(self, row: Any) -> None:
        await self.session.delete(row)

    async def cancel_exports(self, user_id: uuid.UUID) -> None:
        """An erased person's exports (#41): nothing of them is offered any more,
        and the worker removes every file of them (data_export.py)."""
        await self.session.execute(
            update(DataExport)
            .where(DataExport.user_id == user_id, DataExport.status != "cancelled")
            .values(status="cancelled", archive_key=None, ready_at=None)
        )

    async def flush(self) -> None:
        await self.session.flush()

    async def lock_admins(self) -> list[uuid.UUID]:
        """Lock every ADMIN row: two admins demoting each other cannot both succeed."""
        rows = await self.session.scalars(
            select(User.id).where(User.role == Role.ADMIN.value).with_for_update()
        )
        return list(rows)

    async def list_users(
        self, *, role: Role | None, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[User]:
        query = select(User).order_by(User.created_at, User.id).limit(limit)
        if role is not None:
            query = query.where(User.role == role.value)
        if after is not None:
            query = query.where(after_cursor(User.created_at, User.id, after))
        return list(await self.session.scalars(query))

    async def newest_users(self, limit: int) -> list[User]:
        query = select(User).order_by(User.created_at.desc()).limit(limit)
        return list(await self.session.scalars(query))

    # --- refresh tokens -------------------------------------------------------------

    async def refresh_token(self, token_id: uuid.UUID) -> RefreshToken | None:
        return await self.session.scalar(
            select(RefreshToken).where(RefreshToken.id == token_id).with_for_update()
        )

    async def revoke_family(self, family_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def live_sessions(self, user_id: uuid.UUID, now: datetime) -> list[uuid.UUID]:
        """The refresh chains of a user that can still mint tokens."""
        rows = await self.session.scalars(
            select(RefreshToken.family_id)
            .where(
                RefreshToken.user_id == user_id,
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
            )
            .distinct()
        )
        return list(rows)

    # --- classes --------------------------------------------------------------------

    async def school_class(
        self, class_id: uuid.UUID, *, for_update: bool = False
    ) -> SchoolClass | None:
        query = select(SchoolClass).where(SchoolClass.id == class_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def class_by_code(self, code: str, *, for_update: bool = False) -> SchoolClass | None:
        query = select(SchoolClass).where(SchoolClass.join_code == code)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def code_taken(self, code: str) -> bool:
        found = await self.session.scalar(
            select(SchoolClass.id).where(SchoolClass.join_code == code)
        )
        return found is not None

    async def classes(
        self,
        *,
        teacher_id: uuid.UUID | None,
        archived: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[SchoolClass]:
        query = select(SchoolClass).order_by(SchoolClass.created_at, SchoolClass.id).limit(limit)
        if teacher_id is not None:
            query = query.where(SchoolClass.teacher_id == teacher_id)
        if not archived:
            query = query.where(SchoolClass.archived_at.is_(None))
        if after is not None:
            query = query.where(after_cursor(SchoolClass.created_at, SchoolClass.id, after))
        return list(await self.session.scalars(query))

    async def member_counts(self, class_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        if not class_ids:
            return {}
        rows = await self.session.execute(
            select(ClassMember.class_id, func.count())
            .where(ClassMember.class_id.in_(class_ids))
            .group_by(ClassMember.class_id)
        )
        return {class_id: int(count) for class_id, count in rows.all()}

    async def members(self, class_id: uuid.UUID) -> list[tuple[User, datetime]]:
        rows = await self.session.execute(
            select(User, ClassMember.joined_at)
            .join(ClassMember, ClassMember.user_id == User.id)
            .where(ClassMember.class_id == class_id)
            .order_by(User.display_name, User.id)
        )
        return [(user, joined_at) for user, joined_at in rows.all()]

    async def member(self, class_id: uuid.UUID, user_id: uuid.UUID) -> ClassMember | None:
        return await self.session.get(ClassMember, (class_id, user_id))

    async def remove_member(self, class_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(ClassMember).where(
                ClassMember.class_id == class_id, ClassMember.user_id == user_id
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def class_account(self, class_id: uuid.UUID, username: str) -> User | None:
        return await self.session.scalar(
            select(User).where(User.home_class_id == class_id, User.username == username)
        )

    async def usernames(self, class_id: uuid.UUID) -> set[str]:
        rows = await self.session.scalars(
            select(User.username).where(User.home_class_id == class_id)
        )
        return {name for name in rows if name is not None}

    async def live_assignment(
        self, class_id: uuid.UUID, book_id: uuid.UUID
    ) -> ClassAssignment | None:
        return await self.session.scalar(
            select(ClassAssignment).where(
                ClassAssignment.class_id == class_id,
                ClassAssignment.book_id == book_id,
                ClassAssignment.removed_at.is_(None),
            )
        )

    async def assignment(
        self, assignment_id: uuid.UUID, *, for_update: bool = False
    ) -> ClassAssignment | None:
        query = select(ClassAssignment).where(ClassAssignment.id == assignment_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def live_assignments(self, class_id: uuid.UUID) -> list[ClassAssignment]:
        rows = await self.session.scalars(
            select(ClassAssignment)
            .where(ClassAssignment.class_id == class_id, ClassAssignment.removed_at.is_(None))
            .order_by(ClassAssignment.due_at.is_(None), ClassAssignment.due_at,
                      ClassAssignment.assigned_at, ClassAssignment.id)
        )  # fmt: skip
        return list(rows)

    async def entitlements_from(
        self,
        *,
        assignment_id: uuid.UUID | None = None,
        class_id: uuid.UUID | None = None,
        user_id: uuid.UUID | None = None,
    ) -> list[Entitlement]:
        """Active entitlements that one assignment, or a class's assignments, gave."""
        query = select(Entitlement).where(Entitlement.revoked_at.is_(None))
        if assignment_id is not None:
            query = query.where(Entitlement.assignment_id == assignment_id)
        if class_id is not None:
            query = query.join(
                ClassAssignment, ClassAssignment.id == Entitlement.assignment_id
            ).where(ClassAssignment.class_id == class_id)
        if user_id is not None:
            query = query.where(Entitlement.user_id == user_id)
        return list(await self.session.scalars(query.with_for_update(of=Entitlement)))

    async def covering_assignment(
        self, user_id: uuid.UUID, book_id: uuid.UUID
    ) -> ClassAssignment | None:
        """A live assignment of the book in a class the user is in (another class's,
        after one of theirs was taken back)."""
        return await self.session.scalar(
            select(ClassAssignment)
            .join(ClassMember, ClassMember.class_id == ClassAssignment.class_id)
            .where(
                ClassMember.user_id == user_id,
                ClassAssignment.book_id == book_id,
                ClassAssignment.removed_at.is_(None),
            )
            .order_by(ClassAssignment.assigned_at, ClassAssignment.id)
            .limit(1)
        )

    async def assigned_to(self, user_id: uuid.UUID) -> dict[uuid.UUID, datetime | None]:
        """Book -> the earliest due date of its live assignments in the user's classes
        (None: assigned with no due date)."""
        rows = await self.session.execute(
            select(ClassAssignment.book_id, ClassAssignment.due_at)
            .join(ClassMember, ClassMember.class_id == ClassAssignment.class_id)
            .where(ClassMember.user_id == user_id, ClassAssignment.removed_at.is_(None))
        )
        assigned: dict[uuid.UUID, datetime | None] = {}
        for book_id, due_at in rows.all():
            known = assigned.get(book_id)
            if book_id not in assigned or (
                due_at is not None and (known is None or due_at < known)
            ):
                assigned[book_id] = due_at
        return assigned

    # --- entitlements ---------------------------------------------------------------

    async def entitlement(self, entitlement_id: uuid.UUID) -> Entitlement | None:
        return await self.session.scalar(
            select(Entitlement).where(Entitlement.id == entitlement_id).with_for_update()
        )

    async def active_entitlements(
        self, user_ids: Sequence[uuid.UUID], book_id: uuid.UUID
    ) -> dict[uuid.UUID, Entitlement]:
        rows = await self.session.scalars(
            select(Entitlement).where(
                Entitlement.user_id.in_(user_ids),
                Entitlement.book_id == book_id,
                Entitlement.revoked_at.is_(None),
            )
        )
        return {e.user_id: e for e in rows}

    async def has_live_entitlement(
        self, user_id: uuid.UUID, book_id: uuid.UUID, now: datetime
    ) -> bool:
        found = await self.session.scalar(
            select(Entitlement.id).where(
                live_entitlement(user_id, now), Entitlement.book_id == book_id
            )
        )
        return found is not None

    async def list_entitlements(
        self,
        *,
        user_id: uuid.UUID | None,
        book_id: uuid.UUID | None,
        granted_by: uuid.UUID | None,
        include_revoked: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Entitlement]:
        query = select(Entitlement).order_by(Entitlement.granted_at, Entitlement.id).limit(limit)
        if user_id is not None:
            query = query.where(Entitlement.user_id == user_id)
        if book_id is not None:
            query = query.where(Entitlement.book_id == book_id)
        if granted_by is not None:
            query = query.where(Entitlement.granted_by == granted_by)
        if not include_revoked:
            query = query.where(Entitlement.revoked_at.is_(None))
        if after is not None:
            query = query.where(after_cursor(Entitlement.granted_at, Entitlement.id, after))
        return list(await self.session.scalars(query))

    # --- the book read model --------------------------------------------------------

    async def book_titles(self, book_ids: list[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        if not book_ids:
            return {}
        rows = await self.session.execute(
            select(CatalogBook.book_id, CatalogBook.title).where(CatalogBook.book_id.in_(book_ids))
        )
        return {row.book_id: row.title for row in rows}

    async def book(self, book_id: uuid.UUID, *, for_update: bool = False) -> CatalogBook | None:
        query = select(CatalogBook).where(CatalogBook.book_id == book_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def readable_books(
        self,
        user_id: uuid.UUID,
        now: datetime,
        *,
        every_published: bool,
        limit: int,
        first: Sequence[uuid.UUID] = (),
    ) -> list[tuple[CatalogBook, str]]:
        """Published books the user may read, with why: "free", "entitled" or "staff";
        the books in `first` come before the limit cuts (then by title)."""
        entitled_ids = set(
            await self.session.scalars(
                select(Entitlement.book_id).where(live_entitlement(user_id, now))
            )
        )
        query = select(CatalogBook).where(CatalogBook.published.is_(True))
        if not every_published:
            query = query.where(
                or_(CatalogBook.access == "free", CatalogBook.book_id.in_(entitled_ids))
            )
        in_first = CatalogBook.book_id.in_(first) if first else literal(False)
        books = await self.session.scalars(
            query.order_by(in_first.desc(), CatalogBook.title, CatalogBook.book_id).limit(limit)
        )
        return [
            (
                book,
                "free"
                if book.access == "free"
                else "entitled"
                if book.book_id in entitled_ids
                else "staff",
            )
            for book in books
        ]

    # --- audit ----------------------------------------------------------------------

    async def audit_entries(
        self,
        *,
        subject_id: uuid.UUID | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[AuditEntry]:
        query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
        if subject_id is not None:
            query = query.where(AuditEntry.subject_id == subject_id)
        if after is not None:
            query = query.where(after_cursor(AuditEntry.at, AuditEntry.id, after, descending=True))
        return list(await self.session.scalars(query))


def live_entitlement(user_id: uuid.UUID, now: datetime) -> ColumnElement[bool]:
    """The user's entitlements that are neither revoked nor expired at `now`."""
    return and_(
        Entitlement.user_id == user_id,
        Entitlement.revoked_at.is_(None),
        or_(Entitlement.expires_at.is_(None), Entitlement.expires_at > now),
    )
