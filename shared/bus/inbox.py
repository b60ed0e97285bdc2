"""The inbox: each consumed event's id, claimed in the transaction that applies
it, so a redelivered event (SQS delivers at least once) is applied once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import String, Table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from shared.clients.db import PlatformTables, UtcDateTime, upsert
from shared.contracts.clock import now_utc
from shared.contracts.envelope import Envelope


class InboxEntry(PlatformTables):
    __tablename__ = "inbox"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100))
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime)


async def claim_events(session: AsyncSession, envelopes: list[Envelope]) -> set[uuid.UUID]:
    """Record events as processed in this transaction; returns the ids that were new.

    On PostgreSQL a concurrent claim of the same id waits on the primary key
    until the first transaction ends, so two deliveries racing each other still
    apply the event once.
    """
    if not envelopes:
        return set()
    now = now_utc()
    unique = {e.id: e for e in envelopes}
    result = await session.execute(
        # The table, not the mapped class: a plain INSERT, without the ORM's bulk path.
        upsert(session, cast(Table, InboxEntry.__table__))
        .values(
            [{"event_id": e.id, "event_type": e.type, "processed_at": now} for e in unique.values()]
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(InboxEntry.event_id)
    )
    return set(result.scalars())
