"""Queries of the delivery service. No rules here: service.py decides, this reads and writes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, case, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.delivery.models import PublishedBook, Reader, ReaderEntitlement, ReadingProgress
from shared.db import upsert


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)

    async def published_book(
        self, book_id: uuid.UUID, *, for_update: bool = False
    ) -> PublishedBook | None:
        query = select(PublishedBook).where(PublishedBook.book_id == book_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    # --- readers (from access's events) ----------------------------------------------

    async def set_reader_role(self, user_id: uuid.UUID, role: str, at: datetime) -> None:
        """The newest event's role wins, whatever order events arrive in; one statement,
        so two events about one reader applied at once cannot collide on the insert."""
        statement = upsert(self.session, _table(Reader)).values(
            user_id=user_id, role=role, role_changed_at=at
        )
        newer = statement.excluded.role_changed_at >= Reader.role_changed_at
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["user_id"],
                set_={
                    "role": case((newer, statement.excluded.role), else_=Reader.role),
                    "role_changed_at": case(
                        (newer, statement.excluded.role_changed_at), else_=Reader.role_changed_at
                    ),
                },
            )
        )

    async def add_entitlement(
        self,
        entitlement_id: uuid.UUID,
        user_id: uuid.UUID,
        book_id: uuid.UUID,
        expires_at: datetime | None,
    ) -> None:
        # DO NOTHING: a revocation applied first left a revoked row, which stays revoked.
        statement = upsert(self.session, _table(ReaderEntitlement)).values(
            entitlement_id=entitlement_id,
            user_id=user_id,
            book_id=book_id,
            expires_at=expires_at,
            revoked=False,
        )
        await self.session.execute(statement.on_conflict_do_nothing())

    async def revoke_entitlement(
        self, entitlement_id: uuid.UUID, user_id: uuid.UUID, book_id: uuid.UUID
    ) -> None:
        statement = upsert(self.session, _table(ReaderEntitlement)).values(
            entitlement_id=entitlement_id,
            user_id=user_id,
            book_id=book_id,
            expires_at=None,
            revoked=True,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["entitlement_id"], set_={"revoked": True}
            )
        )

    async def reader_role(self, user_id: uuid.UUID) -> str | None:
        role: str | None = await self.session.scalar(
            select(Reader.role).where(Reader.user_id == user_id)
        )
        return role

    async def live_entitlements(
        self, user_id: uuid.UUID
    ) -> list[tuple[uuid.UUID, datetime | None]]:
        """(book, expiry) of each entitlement the reader holds and that is not revoked."""
        rows = await self.session.execute(
            select(ReaderEntitlement.book_id, ReaderEntitlement.expires_at).where(
                ReaderEntitlement.user_id == user_id, ReaderEntitlement.revoked.is_(False)
            )
        )
        return [(book_id, expires_at) for book_id, expires_at in rows]

    # --- reading progress --------------------------------------------------------------

    async def claim_progress(self, row: dict[str, Any]) -> None:
        """Create a reader's progress row unless it exists: two first reports at the
        same moment both succeed, and the row lock taken next orders them."""
        await self.session.execute(
            upsert(self.session, _table(ReadingProgress)).values(**row).on_conflict_do_nothing()
        )

    async def progress_for_update(
        self, user_id: uuid.UUID, book_id: uuid.UUID
    ) -> ReadingProgress | None:
        query = (
            select(ReadingProgress)
            .where(ReadingProgress.user_id == user_id, ReadingProgress.book_id == book_id)
            .with_for_update()
        )
        return (await self.session.scalars(query)).first()

    async def progress_of(self, user_id: uuid.UUID, *, limit: int) -> list[ReadingProgress]:
        rows = await self.session.scalars(
            select(ReadingProgress)
            .where(ReadingProgress.user_id == user_id)
            .order_by(ReadingProgress.updated_at.desc(), ReadingProgress.book_id)
            .limit(limit)
        )
        return list(rows)
