"""Reading: page turns, reading done offline, progressions (OPDS) and the reading
list, each for a reader the book's rule lets read it (links.py; links know nothing
of reading). The writes are batched in page_turns.py and offline.py."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.delivery.links import LinkService
from services.delivery.offline import DeviceReading, OfflineEvent, Refusal, progression_doc
from services.delivery.page_turns import PageTurn, ReadingRecorder
from services.delivery.repository import DeliveryRepository, ReadingState, progress_of
from services.delivery.schemas import (
    OfflineBatch,
    OfflineBatchOut,
    OfflineEventResult,
    Progression,
)
from shared.contracts.clock import hour_of, now_utc
from shared.contracts.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.http.auth import Principal


class ReadingService:
    """Built once and shared by every request: all it holds is long-lived."""

    def __init__(
        self,
        links: LinkService,
        *,
        page_turns: ReadingRecorder,
        devices: DeviceReading,
        read_engine: AsyncEngine,
    ) -> None:
        self.links = links
        self.settings = links.settings
        self.page_turns = page_turns
        self.devices = devices
        # Autocommit: the reading list is one statement on a bare connection.
        self.read_engine = read_engine

    async def record_progress(
        self, principal: Principal, book_id: uuid.UUID, *, page: int, total_pages: int
    ) -> ReadingState:
        """Monotonic and idempotent: a lower or repeated page changes nothing."""
        await self.links.readable(principal, book_id)
        return await self.page_turns.record(
            PageTurn(principal.user_id, book_id, page, total_pages, now_utc())
        )

    async def record_offline(self, principal: Principal, batch: OfflineBatch) -> OfflineBatchOut:
        """Reading done offline, uploaded now (offline.py): each event accepted,
        recognised from an earlier upload, or refused with its reason."""
        if principal.kind != "user":
            raise Forbidden("Reading is for readers, not services.")
        now = now_utc()
        skew = self.settings.offline_clock_skew_seconds
        oldest = now - timedelta(days=self.settings.offline_max_age_days)
        books: dict[uuid.UUID, Refusal | None] = {}
        refusals: dict[uuid.UUID, Refusal] = {}
        seen: set[uuid.UUID] = set()
        opened: set[tuple[uuid.UUID, datetime]] = set()
        repeated: set[int] = set()
        candidates: list[OfflineEvent] = []
        for index, event in enumerate(batch.events):
            if event.id in seen:
                repeated.add(index)
                continue
            seen.add(event.id)
            refusal = self._offline_refusal(event, now + timedelta(seconds=skew), oldest, skew)
            if refusal is None:
                if event.book_id not in books:
                    books[event.book_id] = await self._offline_book(principal, event.book_id)
                refusal = books[event.book_id]
            if refusal is None and event.type == "open":
                # One open per book and hour counts: a later one in the batch is a
                # duplicate at once (earlier uploads' are found when claiming).
                hour = (event.book_id, hour_of(event.at))
                if hour in opened:
                    repeated.add(index)
                    continue
                opened.add(hour)
                refusal = self._offline_open_budget(principal)
            if refusal is not None:
                refusals[event.id] = refusal
                continue
            candidates.append(
                OfflineEvent(
                    event.id, event.type, event.book_id, event.at, event.page, event.total_pages
                )
            )
        claimed, refused_for_length = await self.devices.apply(
            principal.user_id, batch.device_id, candidates
        )
        refusals |= refused_for_length
        results = []
        for index, event in enumerate(batch.events):
            found = refusals.get(event.id)
            if index in repeated or (found is None and event.id not in claimed):
                results.append(OfflineEventResult(id=event.id, status="duplicate"))
            elif found is not None:
                results.append(
                    OfflineEventResult(
                        id=event.id, status="refused", reason=found.code, detail=found.detail
                    )
                )
            else:
                results.append(OfflineEventResult(id=event.id, status="accepted"))
        count = {s: sum(r.status == s for r in results) for s in ("accepted", "duplicate")}
        return OfflineBatchOut(
            accepted=count["accepted"],
            duplicates=count["duplicate"],
            refused=len(results) - count["accepted"] - count["duplicate"],
            results=results,
        )

    def _offline_open_budget(self, principal: Principal) -> Refusal | None:
        """An open uploaded later takes a place in the reader's link budget, as a
        link does (#37 F10: three batches of 500 made-up opens made a book the most
        read): past it the open is refused, and the device may send it again later."""
        state = self.links.parts.limiter.hit(principal.subject)
        if state.exceeded(self.links.parts.limiter.limit):
            return Refusal(
                "too-many-opens",
                f"More opens than links a reader may ask for; send again in {state.retry_after} s.",
            )
        return None

    @staticmethod
    def _offline_refusal(
        event: Any, latest: datetime, oldest: datetime, skew: int
    ) -> Refusal | None:
        """What is wrong with one uploaded event on its own, if anything."""
        if event.at > latest:
            return Refusal(
                "in-the-future", f"It happened after now by more than the {skew} s allowed."
            )
        if event.at < oldest:
            return Refusal("too-old", "Reading older than this is no longer taken.")
        if event.type == "open":
            return None
        if event.total_pages is None:
            return Refusal("total-pages-required", "progress and complete need total_pages.")
        if event.type == "progress" and event.page is None:
            return Refusal("page-required", "progress needs page.")
        if event.page is not None and event.page > event.total_pages:
            return Refusal("page-beyond-book", "page must not be above total_pages.")
        return None

    async def _offline_book(self, principal: Principal, book_id: uuid.UUID) -> Refusal | None:
        """Whether the reader may read the book now (as for a link), as a refusal."""
        try:
            await self.links.readable(principal, book_id)
        except NotFound as exc:
            return Refusal("unknown-book", exc.detail or "No such published book.")
        except Forbidden as exc:
            return Refusal(exc.code, exc.detail or "Not allowed.")
        return None

    async def progression(self, principal: Principal, book_id: uuid.UUID) -> dict[str, Any]:
        """The reader's progression in the book (OPDS Progression), for a reading app."""
        await self.links.readable(principal, book_id)
        async with self.links.session_factory() as session:
            found = await DeliveryRepository(session).progress_many([(principal.user_id, book_id)])
        if not found:
            raise NotFound("No progression in this book yet.", code="no-progression")
        return progression_doc(found[0])

    async def store_progression(
        self, principal: Principal, book_id: uuid.UUID, body: Progression
    ) -> dict[str, Any]:
        """Furthest position wins; a progression older than the stored one (device
        time) is a 409 with the current one, so the app can move to it."""
        await self.links.readable(principal, book_id)
        skew = timedelta(seconds=self.settings.offline_clock_skew_seconds)
        if body.modified > now_utc() + skew:
            raise Unprocessable(
                "modified is ahead of the platform's clock by more than "
                f"{skew.seconds} s: check the device's clock.",
                code="in-the-future",
            )
        # The window reading done offline has (#37 F11: a completion stamped 1971
        # was taken, and would have been counted in a 1971 that nobody charts).
        days = self.settings.offline_max_age_days
        if body.modified < now_utc() - timedelta(days=days):
            raise Unprocessable(
                f"modified is more than {days} days ago: reading older than this is no "
                "longer taken.",
                code="too-old",
            )
        async with self.links.session_factory() as session:
            row = await DeliveryRepository(session).published_book(book_id)
        state, taken = await self.devices.store_progression(
            principal.user_id,
            book_id,
            position=body.locator.locations.position,
            modified=body.modified,
            device_id=body.device.id,
            device_name=body.device.name or None,
            page_count=row.page_count if row is not None else None,
        )
        if not taken:
            raise Conflict(
                "A later progression is stored: this one is stale.",
                code="stale-progression",
                current=progression_doc(state),
            )
        return progression_doc(state)

    async def my_reading(self, principal: Principal, *, limit: int) -> list[ReadingState]:
        if principal.kind != "user":
            raise Forbidden("Reading sessions are for readers, not services.")
        async with self.read_engine.connect() as connection:
            return await progress_of(connection, principal.user_id, limit=limit)
