"""Queries of the delivery service. No rules here: links.py and reading.py decide."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    DateTime,
    Integer,
    Table,
    Uuid,
    and_,
    bindparam,
    case,
    delete,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.delivery.models import (
    OfflineReadingEvent,
    PublishedBook,
    Reader,
    ReaderEntitlement,
    ReadingProgress,
)
from shared.clients.db import upsert


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


@dataclass
class ReadingState:
    """A reader's progress in one book, as stored."""

    user_id: uuid.UUID
    book_id: uuid.UUID
    page: int
    total_pages: int
    started_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    announced_page: int
    modified_at: datetime | None = None
    device_id: str | None = None
    device_name: str | None = None


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

    async def forget_reader(self, user_id: uuid.UUID) -> None:
        for table in (ReadingProgress, OfflineReadingEvent):
            await self.session.execute(delete(table).where(table.user_id == user_id))
        await self.session.execute(
            update(ReaderEntitlement)
            .where(ReaderEntitlement.user_id == user_id)
            .values(revoked=True)
        )
        await self.session.execute(delete(Reader).where(Reader.user_id == user_id))

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

    async def published_books(self) -> list[PublishedBook]:
        return list(
            await self.session.scalars(
                select(PublishedBook).where(PublishedBook.published.is_(True))
            )
        )

    async def all_readers(self, limit: int) -> list[tuple[uuid.UUID, str]]:
        rows = await self.session.execute(select(Reader.user_id, Reader.role).limit(limit))
        return [(user_id, role) for user_id, role in rows]

    async def all_live_entitlements(
        self,
    ) -> list[tuple[uuid.UUID, uuid.UUID, datetime | None]]:
        """(reader, book, expiry) of every entitlement not revoked."""
        rows = await self.session.execute(
            select(
                ReaderEntitlement.user_id, ReaderEntitlement.book_id, ReaderEntitlement.expires_at
            ).where(ReaderEntitlement.revoked.is_(False))
        )
        return [(user_id, book_id, expires_at) for user_id, book_id, expires_at in rows]

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
    #
    # Page turns are the second hottest write: plain Core statements, one round
    # trip for a turn that changes something, and a first report that races
    # another for the same book simply lands on the row the other created.

    async def claim_offline(self, user_id: uuid.UUID, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
        """Record these uploaded events' ids for the reader; the ids recorded now (an
        id already there, from an earlier upload, is left as it was and not returned;
        so is an open in an hour that already has one of that reader and book)."""
        if not rows:
            return set()
        table = _table(OfflineReadingEvent)
        ordered = sorted(
            ({**row, "user_id": user_id} for row in rows), key=lambda r: str(r["event_id"])
        )
        statement = (
            upsert(self.session, table)
            .values(ordered)
            # No target: the id's key and the open's hour both pass a row over.
            .on_conflict_do_nothing()
            .returning(table.c.event_id)
        )
        return set(await self.session.scalars(statement))

    async def prune_offline(self, received_before: datetime) -> int:
        result = await self.session.execute(
            delete(OfflineReadingEvent).where(OfflineReadingEvent.received_at < received_before)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def advance_progress(self, rows: list[dict[str, Any]]) -> list[ReadingState]:
        """Create each reader's row for a book, or move it forward: one statement for
        many readers. Returns the rows it changed; one at or below its furthest page,
        or naming another length than the stored one, is left as it was and not returned.

        Rows must name distinct (user, book) pairs; they are written in key order,
        so two batches lock the rows they share in the same order.
        """
        if not rows:
            return []
        table = _table(ReadingProgress)
        ordered = sorted(rows, key=lambda r: (str(r["user_id"]), str(r["book_id"])))
        if self.session.get_bind().dialect.name == "postgresql":
            columns = {name: [row[name] for row in ordered] for name in _ADVANCED_COLUMNS}
            found = await self.session.execute(_ADVANCE_PROGRESS, columns)
            return [ReadingState(**row._mapping) for row in found]
        statement = upsert(self.session, table).values(ordered)
        new = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=["user_id", "book_id"],
            # The book's length is pinned by the first report: a later one with
            # another length changes nothing (else {"page": 50, "total_pages": 100}
            # then {"page": 1, "total_pages": 1} read as 5000 %).
            set_={"page": new.page, "updated_at": new.updated_at},
            where=and_(new.page > table.c.page, new.total_pages == table.c.total_pages),
        ).returning(*table.c)
        return [ReadingState(**row._mapping) for row in await self.session.execute(statement)]

    async def store_progression(self, row: dict[str, Any]) -> ReadingState | None:
        """A reading app's progression (#20): the furthest page wins, the device and
        time are the latest; one older than what is stored (by its device time, or
        the last page turn) changes nothing and gives None."""
        table = _table(ReadingProgress)
        statement = upsert(self.session, table).values(row)
        new = statement.excluded
        further = new.page > table.c.page
        statement = statement.on_conflict_do_update(
            index_elements=["user_id", "book_id"],
            set_={
                "page": case((further, new.page), else_=table.c.page),
                "updated_at": case((further, new.updated_at), else_=table.c.updated_at),
                "modified_at": new.modified_at,
                "device_id": new.device_id,
                "device_name": new.device_name,
            },
            where=and_(
                new.modified_at >= table.c.updated_at,
                or_(table.c.modified_at.is_(None), new.modified_at >= table.c.modified_at),
            ),
        ).returning(*table.c)
        found = (await self.session.execute(statement)).first()
        return ReadingState(**found._mapping) if found is not None else None

    async def progress_many(self, keys: list[tuple[uuid.UUID, uuid.UUID]]) -> list[ReadingState]:
        """The stored rows of these (user, book) pairs."""
        if not keys:
            return []
        table = _table(ReadingProgress)
        rows = await self.session.execute(
            select(table).where(tuple_(table.c.user_id, table.c.book_id).in_(keys))
        )
        return [ReadingState(**row._mapping) for row in rows]

    async def mark_announced(self, states: list[ReadingState]) -> None:
        """Store what was announced (a step, a completion) for these rows."""
        if not states:
            return
        table = _table(ReadingProgress)
        await self.session.execute(
            update(table)
            .where(
                table.c.user_id == bindparam("key_user"), table.c.book_id == bindparam("key_book")
            )
            .values(announced_page=bindparam("announced"), completed_at=bindparam("completed")),
            [
                {
                    "key_user": state.user_id,
                    "key_book": state.book_id,
                    "announced": state.announced_page,
                    "completed": state.completed_at,
                }
                for state in states
            ],
        )


_PROGRESS = _table(ReadingProgress)

# advance_progress on PostgreSQL: the batch as one array per column, so the
# statement is the same text whatever the batch's size: compiled and prepared
# once, where a multi-row VALUES is compiled anew for every size (measured: a
# tenth of the delivery API's time at the load test's peak). The conflict rule
# is the one the Core statement below it states.
_ADVANCED_COLUMNS = (
    "user_id", "book_id", "page", "total_pages",
    "started_at", "updated_at", "completed_at", "announced_page",
)  # fmt: skip
_ADVANCE_PROGRESS = (
    text(
        f"""
        INSERT INTO reading_progress AS stored ({", ".join(_ADVANCED_COLUMNS)})
        SELECT {", ".join(_ADVANCED_COLUMNS)} FROM unnest(
            :user_id, :book_id, :page, :total_pages,
            :started_at, :updated_at, :completed_at, :announced_page
        ) WITH ORDINALITY AS turn({", ".join(_ADVANCED_COLUMNS)}, position)
        ORDER BY position
        ON CONFLICT (user_id, book_id) DO UPDATE
            SET page = excluded.page, updated_at = excluded.updated_at
            WHERE excluded.page > stored.page AND excluded.total_pages = stored.total_pages
        RETURNING {", ".join(f"stored.{c.name}" for c in _PROGRESS.c)}
        """  # noqa: S608 - column names from the model, no input
    )
    .bindparams(
        *(bindparam(n, type_=ARRAY(Uuid())) for n in ("user_id", "book_id")),
        *(bindparam(n, type_=ARRAY(Integer())) for n in ("page", "total_pages", "announced_page")),
        *(
            bindparam(n, type_=ARRAY(DateTime(timezone=True)))
            for n in ("started_at", "updated_at", "completed_at")
        ),
    )
    .columns(*_PROGRESS.c)
)
# Built once: the same statement object is compiled once and then served from
# SQLAlchemy's cache (the reading list is one of the readers' hottest requests).
_PROGRESS_OF = (
    select(_PROGRESS)
    .where(_PROGRESS.c.user_id == bindparam("user_id"))
    .order_by(_PROGRESS.c.updated_at.desc(), _PROGRESS.c.book_id)
    .limit(bindparam("limit"))
)


async def progress_of(
    connection: AsyncConnection, user_id: uuid.UUID, *, limit: int
) -> list[ReadingState]:
    """A reader's books with their progress, most recently read first (on a bare
    connection: one statement, no ORM session to set up and tear down)."""
    rows = await connection.execute(_PROGRESS_OF, {"user_id": user_id, "limit": limit})
    return [ReadingState(**row._mapping) for row in rows]
