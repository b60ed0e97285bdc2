"""Every SQL statement of the metrics service."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.metrics.models import RecordedEvent
from shared.events import Envelope


def add_to_event_log(session: AsyncSession, envelope: Envelope) -> None:
    session.add(
        RecordedEvent(
            event_id=envelope.id,
            event_type=envelope.type,
            source=envelope.source,
            subject=envelope.subject,
            occurred_at=envelope.time,
            received_at=datetime.now(UTC),
            data=envelope.data,
        )
    )
