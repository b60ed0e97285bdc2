"""The projection run: live (each event logged, then projected, in one transaction)
and rebuilt from the event log; and the worker's job that keeps the reader
sketches sealed. How each event moves the figures is projectors.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.metrics import repository
from services.metrics.projectors import BatchFigures, apply_event
from services.metrics.settings import MetricsSettings
from services.metrics.sketches import ReaderSketches
from shared.bus.consumer import BatchScope, EventContext
from shared.contracts.clock import now_utc
from shared.contracts.envelope import Envelope
from shared.contracts.events import EventData

if TYPE_CHECKING:
    from shared.resources import Resources
    from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)


async def log_and_apply(context: EventContext, data: EventData) -> None:
    """Keep the event in the log and move the figures by it, in one transaction."""
    BatchFigures.of(context).log(context.envelope)
    await apply_event(context, data)


def envelope_of(recorded: Any) -> Envelope:
    """A logged event (a row of `event_log`, mapped or not) as it was received."""
    return Envelope(
        id=recorded.event_id,
        source=recorded.source,
        type=recorded.event_type,
        time=recorded.occurred_at,
        subject=recorded.subject,
        dataversion=recorded.dataversion,
        data=recorded.data,
    )


async def rebuild(session: AsyncSession, resources: Resources, *, page_size: int = 500) -> int:
    """Recompute every aggregate from the event log, in one transaction (nobody sees
    half-built figures); returns how many events were applied. It starts from what
    the reading events past their retention added (retention.py: folded when
    their rows left the log), so their figures stay as they were.

    The log is locked against new events meanwhile (on PostgreSQL), so an event
    the consumer applies during the rebuild is neither lost nor counted twice:
    the consumer waits, then applies it to the rebuilt figures.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE event_log IN EXCLUSIVE MODE"))
    await repository.clear_derived(session)
    await repository.restore_folded(session)
    await ReaderSketches.of(resources).clear()
    batch = BatchScope()
    applied = 0
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        page = await repository.event_log_page(session, after, page_size)
        if not page:
            break
        for recorded in page:
            envelope = envelope_of(recorded)
            context = EventContext(
                session=session, envelope=envelope, resources=resources, batch=batch
            )
            await apply_event(context, envelope.contract())
            applied += 1
        after = (page[-1].occurred_at, page[-1].event_id)
    for action in batch.before_commit:
        await action()
    await session.commit()
    await batch.run_after_commit()
    return applied


async def keep_reader_sketches_sealed(
    resources: Resources, settings: ServiceSettings, stop: asyncio.Event
) -> None:
    """The worker's job: reseal the sketches whenever they may lack readers (Redis
    restarted empty, or a write failed), without anyone asking."""
    if not isinstance(settings, MetricsSettings):
        raise TypeError(f"the metrics worker needs MetricsSettings, not {type(settings).__name__}")
    every_seconds = settings.sketch_reseal_seconds
    if every_seconds <= 0:
        return
    sketches = ReaderSketches.of(resources)
    while not stop.is_set():
        try:
            await sketches.reseal(resources.session_factory, now_utc())
        except Exception as exc:  # Redis or the database away: try again next round
            log.info("reader sketches not resealed yet", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
