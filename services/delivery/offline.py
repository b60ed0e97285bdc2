"""Reading on devices (#20): reading apps' progression (OPDS Progression), and
reading done offline.

Reading done offline: a device that read without a connection uploads what
happened when it is back (`POST /v1/reading/events`), each event with the device's
own time and an id the device made.

- The ids make an upload idempotent: each is claimed once per reader (a retried
  upload, or the same batch sent twice at once, changes nothing the second time).
- Opens count as links do: each takes a place in the reader's link budget
  (`DELIVERY_LINKS_PER_MINUTE`), and at most one per reader, book and hour counts
  (the rest are duplicates), so one reader cannot make a book "most read" (#37 F10).
- An event counts when it happened: its announcements (`reading.opened`,
  `reading.progressed`, `reading.completed`) carry the device's time, and the
  metrics service counts every event in the hour of its time.
- Events older than `DELIVERY_OFFLINE_MAX_AGE_DAYS` (30) or later than now plus
  `DELIVERY_OFFLINE_CLOCK_SKEW_SECONDS` (300) are refused one by one, with the
  reason, while the others are taken (partial success).
- Progress follows the online rule: the furthest page wins, the first report
  fixes the book's length.

The claimed ids are kept a day longer than the oldest event accepted, so a
retry of anything that could still be accepted is recognised; the worker drops
older ones (`prune_offline_ids`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.delivery.page_turns import announce
from services.delivery.repository import DeliveryRepository, ReadingState
from services.delivery.settings import DeliverySettings
from shared.bus.outbox import record_event
from shared.clients.db import unit_of_work
from shared.contracts.clock import hour_of, now_utc
from shared.contracts.errors import Conflict, Unprocessable
from shared.contracts.events import ReadingOpened
from shared.resources import Resources
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

# How long a claimed id is kept beyond the oldest event that could still be accepted.
ID_MARGIN = timedelta(days=1)


@dataclass(frozen=True)
class OfflineEvent:
    """One uploaded event that passed the checks that need no database."""

    event_id: uuid.UUID
    kind: str  # open | progress | complete
    book_id: uuid.UUID
    at: datetime
    page: int | None
    total_pages: int | None


@dataclass(frozen=True)
class Refusal:
    code: str
    detail: str


class DeviceReading:
    """What reading apps and devices report, written on the shared pool (uploads and
    progressions are rare beside page turns, which have connections of their own)."""

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], *, step_percent: int
    ) -> None:
        self._session_factory = session_factory
        self._step_percent = step_percent

    async def apply(
        self, user_id: uuid.UUID, device_id: str, events: Sequence[OfflineEvent]
    ) -> tuple[set[uuid.UUID], dict[uuid.UUID, Refusal]]:
        """Claim and apply the events in one transaction: the ids claimed now (the
        others were uploaded before), and those refused for the book's length."""
        received_at = now_utc()
        async with unit_of_work(self._session_factory) as session:
            repository = DeliveryRepository(session)
            paged = sorted({e.book_id for e in events if e.kind != "open"})
            stored = await repository.progress_many([(user_id, book) for book in paged])
            lengths = {state.book_id: state.total_pages for state in stored}
            refused: dict[uuid.UUID, Refusal] = {}
            usable = []
            for event in events:
                if event.kind != "open":
                    assert event.total_pages is not None  # checked by the service
                    fixed = lengths.setdefault(event.book_id, event.total_pages)
                    if event.total_pages != fixed:
                        refused[event.event_id] = Refusal(
                            "total-pages-mismatch",
                            f"This book has {fixed} pages in your progress.",
                        )
                        continue
                usable.append(event)
            claimed = await repository.claim_offline(
                user_id,
                [
                    {
                        "event_id": e.event_id,
                        "device_id": device_id,
                        "kind": e.kind,
                        "book_id": e.book_id,
                        "happened_at": e.at,
                        "received_at": received_at,
                        "open_hour": hour_of(e.at) if e.kind == "open" else None,
                    }
                    for e in usable
                ],
            )
            fresh = [e for e in usable if e.event_id in claimed]
            for event in fresh:
                if event.kind == "open":
                    record_event(
                        session,
                        ReadingOpened(book_id=event.book_id, user_id=user_id),
                        time=event.at,
                    )
            changed = await repository.advance_progress(_furthest(user_id, fresh))
            await repository.mark_announced(
                [s for s in changed if announce(session, s, step_percent=self._step_percent)]
            )
        return claimed, refused

    async def store_progression(
        self,
        user_id: uuid.UUID,
        book_id: uuid.UUID,
        *,
        position: int,
        modified: datetime,
        device_id: str,
        device_name: str | None,
        page_count: int | None,
    ) -> tuple[ReadingState, bool]:
        """Store a reading app's progression: the reader's progress afterwards, and
        whether it was taken (False: stale, older than what is stored)."""
        async with unit_of_work(self._session_factory) as session:
            repository = DeliveryRepository(session)
            existing = await repository.progress_many([(user_id, book_id)])
            total = existing[0].total_pages if existing else page_count
            if total is None:
                raise Conflict(
                    "This book's length is not known yet: report progress with total_pages "
                    "(PUT /v1/reading/{book_id}/progress) or retry in a minute.",
                    code="length-unknown",
                )
            if position > total:
                raise Unprocessable(
                    f"position is beyond the book's {total} pages.", code="position-beyond-book"
                )
            stored = await repository.store_progression(
                {
                    "user_id": user_id,
                    "book_id": book_id,
                    "page": position,
                    "total_pages": total,
                    "started_at": modified,
                    "updated_at": modified,
                    "completed_at": None,
                    "announced_page": 0,
                    "modified_at": modified,
                    "device_id": device_id,
                    "device_name": device_name,
                }
            )
            if stored is None:
                return existing[0], False
            if announce(session, stored, step_percent=self._step_percent):
                await repository.mark_announced([stored])
        return stored, True


def progression_doc(state: ReadingState) -> dict[str, Any]:
    """A reader's progress as an OPDS Progression document (a PDF: positions are
    pages). `modified` is the device time of the last progression, or of the last
    page turn if that is later."""
    modified = max(t for t in (state.modified_at, state.updated_at) if t is not None)
    return {
        "modified": modified.isoformat().replace("+00:00", "Z"),
        "device": {"id": state.device_id or "", "name": state.device_name or ""},
        "locator": {
            "href": f"urn:uuid:{state.book_id}",
            "type": "application/pdf",
            "locations": {
                "position": state.page,
                "totalProgression": round(state.page / state.total_pages, 4),
            },
        },
    }


def _furthest(user_id: uuid.UUID, events: Sequence[OfflineEvent]) -> list[dict[str, Any]]:
    """One progress row per book: its furthest page, reached when (the earliest time
    it was reached); started at the earliest event."""
    rows: dict[uuid.UUID, dict[str, Any]] = {}
    for event in sorted((e for e in events if e.kind != "open"), key=lambda e: e.at):
        assert event.total_pages is not None
        page = event.total_pages if event.kind == "complete" else (event.page or 0)
        row = rows.setdefault(
            event.book_id,
            {
                "user_id": user_id,
                "book_id": event.book_id,
                "page": -1,
                "total_pages": event.total_pages,
                "started_at": event.at,
                "updated_at": event.at,
                "completed_at": None,
                "announced_page": 0,
            },
        )
        if page > row["page"]:
            row["page"], row["updated_at"] = page, event.at
    return list(rows.values())


async def prune_offline_ids(
    resources: Resources, settings: ServiceSettings, stop: asyncio.Event
) -> None:
    """The worker's job: drop the claimed ids no upload could still repeat usefully
    (older than the oldest event accepted, plus a day), hourly."""
    if not isinstance(settings, DeliverySettings):
        raise TypeError(f"the delivery worker needs DeliverySettings, not {type(settings)}")
    while not stop.is_set():
        keep = timedelta(days=settings.offline_max_age_days) + ID_MARGIN
        try:
            async with unit_of_work(resources.session_factory) as session:
                dropped = await DeliveryRepository(session).prune_offline(now_utc() - keep)
            if dropped:
                log.info("offline reading ids dropped", count=dropped)
        except Exception as exc:  # the database away: next round
            log.info("offline reading ids not pruned yet", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.offline_prune_seconds)
