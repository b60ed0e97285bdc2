"""Queries of the delivery service. No rules here: service.py decides, this reads and writes."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.delivery.models import PublishedBook, ReadingProgress


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
