"""Metrics' part of a person's export (#41): the rows of its figures that name
them: their account's state, their reading of each book, the hours they read, the
classes they are in and the teachers who gave them books. From metrics' own
database only. The event log is not in it: every event about them is already
there as the row it made (and, past its retention, as its folded row)."""

from __future__ import annotations

from typing import Any

from services.metrics.models import (
    ClassMembership,
    FoldedReaderHour,
    FoldedReading,
    ReaderHour,
    ReadingState,
    TeacherLearner,
    UserState,
)
from shared.bus.consumer import EventContext
from shared.bus.exports import rows_of, write_part
from shared.contracts.events import UserExportRequested


async def write_metrics_part(context: EventContext, event: UserExportRequested) -> None:
    session, user_id = context.session, event.user_id

    async def rows(table: Any) -> list[dict[str, Any]]:
        return await rows_of(session, table, user_id)

    await write_part(
        context.resources,
        "metrics",
        event.export_id,
        user_id,
        {
            "account": await rows(UserState),
            "reading": await rows(ReadingState),
            "reading_hours": await rows(ReaderHour),
            # The share of the two above that events past their retention added
            # (retention.py): the same figures again, kept for a rebuild.
            "reading_folded": await rows(FoldedReading),
            "reading_hours_folded": await rows(FoldedReaderHour),
            "class_memberships": await rows(ClassMembership),
            "books_from_teachers": await rows(TeacherLearner),
        },
    )
