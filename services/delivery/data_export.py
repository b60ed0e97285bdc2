"""Delivery's part of a person's export (#41): their role as delivery knows it,
their entitlements, their reading progress on each book and the reading events
their devices sent after reading offline. From delivery's own database only."""

from __future__ import annotations

from typing import Any

from services.delivery.models import OfflineReadingEvent, Reader, ReaderEntitlement, ReadingProgress
from shared.bus.consumer import EventContext
from shared.bus.exports import rows_of, write_part
from shared.contracts.events import UserExportRequested


async def write_delivery_part(context: EventContext, event: UserExportRequested) -> None:
    session, user_id = context.session, event.user_id

    async def rows(table: Any) -> list[dict[str, Any]]:
        return await rows_of(session, table, user_id)

    await write_part(
        context.resources,
        "delivery",
        event.export_id,
        user_id,
        {
            "reader": await rows(Reader),
            "entitlements": await rows(ReaderEntitlement),
            "reading_progress": await rows(ReadingProgress),
            "offline_reading_events": await rows(OfflineReadingEvent),
        },
    )
