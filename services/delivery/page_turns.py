"""Reading progress: page turns from many readers, committed together.

Page turns are the platform's most frequent write. Each report is monotonic
and idempotent (a page at or below the furthest one changes nothing), so the
reports that arrive while a commit is running form the next batch: one
multi-row upsert moves every reader forward, one statement stores what was
announced, and the events it earns (another step of `progress_step_percent`,
the book completed) join the same transaction through the outbox.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.delivery.repository import DeliveryRepository, ReadingState
from shared.bus.batching import CommitBatcher
from shared.bus.outbox import record_event
from shared.clients.db import unit_of_work
from shared.contracts.errors import Conflict
from shared.contracts.events import ReadingCompleted, ReadingProgressed


@dataclass(frozen=True)
class PageTurn:
    user_id: uuid.UUID
    book_id: uuid.UUID
    page: int
    total_pages: int
    at: datetime

    @property
    def key(self) -> tuple[uuid.UUID, uuid.UUID]:
        return self.user_id, self.book_id


def announce(session: AsyncSession, progress: ReadingState, *, step_percent: int) -> bool:
    """Record the events this step earns (completion, another progress step);
    whether `progress` changed and must be stored again."""

    def bucket(page: int) -> int:
        return (page * 100 // progress.total_pages) // step_percent

    changed = False
    if progress.page >= progress.total_pages and progress.completed_at is None:
        progress.completed_at = progress.updated_at
        record_event(
            session,
            ReadingCompleted(book_id=progress.book_id, user_id=progress.user_id),
            time=progress.updated_at,
        )
        changed = True
    if bucket(progress.page) > bucket(progress.announced_page):
        progress.announced_page = progress.page
        record_event(
            session,
            ReadingProgressed(
                book_id=progress.book_id,
                user_id=progress.user_id,
                page=progress.page,
                total_pages=progress.total_pages,
            ),
            time=progress.updated_at,  # offline reading counts when it happened (#20)
        )
        changed = True
    return changed


class ReadingRecorder:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        step_percent: int,
        max_in_flight: int = 3,
    ) -> None:
        self._session_factory = session_factory
        self._step_percent = step_percent
        self._batcher: CommitBatcher[PageTurn, ReadingState] = CommitBatcher(
            self._commit, name="reading", max_in_flight=max_in_flight
        )

    async def record(self, turn: PageTurn) -> ReadingState:
        """The reader's progress in the book once this turn is stored; a 409 if the
        turn names another length than the one the reader's first report fixed."""
        state = await self._batcher.submit(turn)
        if state.total_pages != turn.total_pages:
            raise Conflict(
                f"This book has {state.total_pages} pages in your progress; "
                "report pages out of that.",
                code="total-pages-mismatch",
                total_pages=state.total_pages,
            )
        return state

    async def _commit(self, turns: list[PageTurn]) -> Sequence[ReadingState]:
        # One row per reader and book: the furthest page of the batch, the last length.
        merged: dict[tuple[uuid.UUID, uuid.UUID], dict[str, Any]] = {}
        for turn in turns:
            row = merged.get(turn.key)
            page = min(turn.page, turn.total_pages)
            if row is None:
                merged[turn.key] = {
                    "user_id": turn.user_id,
                    "book_id": turn.book_id,
                    "page": page,
                    "total_pages": turn.total_pages,
                    "started_at": turn.at,
                    "updated_at": turn.at,
                    "completed_at": None,
                    "announced_page": 0,
                }
            elif turn.total_pages == row["total_pages"]:  # another length: refused above
                row["page"] = max(row["page"], page)
                row["updated_at"] = turn.at
        async with unit_of_work(self._session_factory) as session:
            repository = DeliveryRepository(session)
            changed = await repository.advance_progress(list(merged.values()))
            states = {(s.user_id, s.book_id): s for s in changed}
            unchanged = [key for key in merged if key not in states]
            for state in await repository.progress_many(unchanged):
                states[(state.user_id, state.book_id)] = state
            await repository.mark_announced(
                [s for s in changed if announce(session, s, step_percent=self._step_percent)]
            )
        return [states[turn.key] for turn in turns]


def progress_json(state: ReadingState) -> bytes:
    """The answer to a progress report, by hand (ProgressOut is its schema)."""

    def instant(moment: datetime | None) -> str | None:
        return moment.isoformat().replace("+00:00", "Z") if moment is not None else None

    return json.dumps(
        {
            "book_id": str(state.book_id),
            "page": state.page,
            "total_pages": state.total_pages,
            "percent": state.page * 100 // state.total_pages,
            "started_at": instant(state.started_at),
            "updated_at": instant(state.updated_at),
            "completed_at": instant(state.completed_at),
        }
    ).encode()


def reading_list_json(states: list[ReadingState]) -> bytes:
    """The reading list, by hand (a JSON array of ProgressOut)."""
    return b"[" + b",".join(progress_json(s) for s in states) + b"]"
