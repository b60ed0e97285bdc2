"""xAPI statements to a learning record store (#20), when `METRICS_XAPI_LRS_URL` is set.

Every reading event (a book opened, progress, a completion) and the workflow's
milestones (a story submitted for review, a review, a publication) become one
xAPI 1.0.3 statement each:

- the actor is an account on the platform's home page named by the account's id,
  never an email or a name (ids name nobody once an account is erased);
- verbs are ADL's (launched, progressed, completed, shared, responded,
  registered... see VERBS);
- the object is the book as an activity, with its title in its language;
- the statement id is derived from the event id (UUID v5): a redelivered event,
  a resent batch or a replay gives the same statement, which the LRS takes once.

The metrics consumer writes each such event's id to `xapi_outbox` in the same
transaction that logs it; the worker's job (`send_statements`) sends the outbox
in batches and deletes what the LRS took. The LRS down: nothing is lost, the
batch is tried again with a growing pause (up to a minute). `stories xapi replay
--since T` puts every logged event since T back in the outbox: it backfills a
new LRS.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import httpx
import structlog
from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.metrics.models import BookState, RecordedEvent, XapiOutbox
from services.metrics.settings import MetricsSettings
from shared.clients.db import unit_of_work, upsert

if TYPE_CHECKING:
    from shared.resources import Resources
    from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

XAPI_VERSION = "1.0.3"
# Statement ids: uuid5(this, event id).
STATEMENT_NAMESPACE = uuid.UUID("5b0d7e3c-1001-4f0a-9a51-5d8a3c0b7e21")
ADL = "http://adlnet.gov/expapi/verbs/"
BOOK_ACTIVITY = "http://id.tincanapi.com/activitytype/book"
PROGRESS_EXTENSION = "https://w3id.org/xapi/cmi5/result/extensions/progress"
# event type -> the ADL verb it becomes
VERBS = {
    "delivery.issued": "launched",
    "reading.opened": "launched",
    "reading.progressed": "progressed",
    "reading.completed": "completed",
    "submission.submitted": "shared",
    "submission.reviewed": "responded",
    "book.published": "registered",
}
LONGEST_PAUSE_SECONDS = 60.0


def statement_id(event_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(STATEMENT_NAMESPACE, str(event_id))


def _actor(home_page: str, account: str) -> dict[str, Any]:
    return {"objectType": "Agent", "account": {"homePage": home_page, "name": account}}


def _book(home_page: str, book_id: Any, book: BookState | None) -> dict[str, Any]:
    definition: dict[str, Any] = {"type": BOOK_ACTIVITY}
    if book is not None and book.title:
        definition["name"] = {book.language or "und": book.title}
    return {
        "objectType": "Activity",
        "id": f"{home_page}/books/{book_id}",
        "definition": definition,
    }


def statement(
    event: RecordedEvent, books: dict[uuid.UUID, BookState], home_page: str
) -> dict[str, Any]:
    """The statement of one logged event (its type is one of VERBS)."""
    data, verb = event.data, VERBS[event.event_type]
    result: dict[str, Any] | None = None
    if event.event_type.startswith("submission."):
        # The submission as the activity: a manuscript on its way to a book.
        actor_id = data.get("author_id") or data.get("reviewer_id") or "platform"
        if event.event_type == "submission.reviewed":
            actor_id = data.get("reviewer_id") or "platform"
            result = {"response": str(data.get("decision"))}
        target: dict[str, Any] = {
            "objectType": "Activity",
            "id": f"{home_page}/submissions/{data['submission_id']}",
            "definition": {"type": "http://id.tincanapi.com/activitytype/document"},
        }
        language = data.get("language")
    else:
        book_id = uuid.UUID(str(data["book_id"]))
        book = books.get(book_id)
        # A publication is the platform's act; reading is the reader's.
        actor_id = data.get("user_id") or "platform"
        target = _book(home_page, book_id, book)
        language = (book.language if book else None) or data.get("language")
        if event.event_type == "reading.progressed":
            percent = min(100, int(data["page"]) * 100 // max(1, int(data["total_pages"])))
            result = {"extensions": {PROGRESS_EXTENSION: percent}}
        elif event.event_type == "reading.completed":
            result = {"completion": True}
    document: dict[str, Any] = {
        "id": str(statement_id(event.event_id)),
        "actor": _actor(home_page, str(actor_id)),
        "verb": {"id": ADL + verb, "display": {"en-US": verb}},
        "object": target,
        "timestamp": event.occurred_at.isoformat(),
        "context": {"platform": "1001 Stories"},
    }
    if language:
        document["context"]["language"] = language
    if result is not None:
        document["result"] = result
    return document


def outbox_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outbox rows of a batch's logged events: those that make statements."""
    return [
        {"event_id": e["event_id"], "occurred_at": e["occurred_at"]}
        for e in events
        if e["event_type"] in VERBS
    ]


async def add_to_outbox(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(
            upsert(session, cast(Table, XapiOutbox.__table__)).values(rows).on_conflict_do_nothing()
        )


async def replay(session: AsyncSession, since: datetime) -> int:
    """Every logged event since `since` that makes a statement, back in the outbox."""
    found = await session.execute(
        select(RecordedEvent.event_id, RecordedEvent.occurred_at).where(
            RecordedEvent.occurred_at >= since,
            RecordedEvent.event_type.in_(list(VERBS)),
        )
    )
    rows = [{"event_id": event_id, "occurred_at": at} for event_id, at in found.all()]
    for start in range(0, len(rows), 500):
        await add_to_outbox(session, rows[start : start + 500])
    return len(rows)


class StatementSender:
    def __init__(self, resources: Resources, settings: MetricsSettings) -> None:
        assert settings.xapi_lrs_url is not None
        self._resources = resources
        self._settings = settings
        password = settings.xapi_lrs_password
        self._url = settings.xapi_lrs_url.rstrip("/") + "/statements"
        self._auth = httpx.BasicAuth(
            settings.xapi_lrs_username, password.get_secret_value() if password else ""
        )

    async def send_once(self) -> int:
        """Send one batch from the outbox; how many the LRS took (0: nothing waits).
        Raises if the LRS does not take them (they stay in the outbox)."""
        settings = self._settings
        async with unit_of_work(self._resources.session_factory) as session:
            pending = list(
                await session.scalars(
                    select(XapiOutbox.event_id)
                    .order_by(XapiOutbox.occurred_at, XapiOutbox.event_id)
                    .limit(settings.xapi_batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not pending:
                return 0
            events = list(
                await session.scalars(
                    select(RecordedEvent).where(RecordedEvent.event_id.in_(pending))
                )
            )
            book_ids = {uuid.UUID(str(e.data["book_id"])) for e in events if "book_id" in e.data}
            books = {
                b.book_id: b
                for b in await session.scalars(
                    select(BookState).where(BookState.book_id.in_(book_ids))
                )
            }
            statements = [statement(e, books, settings.xapi_home_page) for e in events]
            if statements:
                response = await self._resources.http.post(
                    self._url,
                    json=statements,
                    auth=self._auth,
                    headers={"X-Experience-API-Version": XAPI_VERSION},
                    timeout=settings.xapi_timeout_seconds,
                )
                # 200: taken; 204: every one was there already (a resend).
                if response.status_code not in (200, 204):
                    raise RuntimeError(f"the LRS answered {response.status_code}")
            await session.execute(delete(XapiOutbox).where(XapiOutbox.event_id.in_(pending)))
        return len(pending)


async def send_statements(
    resources: Resources, settings: ServiceSettings, stop: asyncio.Event
) -> None:
    """The worker's job: keep the outbox flowing to the LRS; after a failure, pause
    longer each time (up to a minute) and try the same statements again."""
    if not isinstance(settings, MetricsSettings) or settings.xapi_lrs_url is None:
        return
    sender, pause = StatementSender(resources, settings), settings.xapi_send_seconds
    while not stop.is_set():
        try:
            while await sender.send_once() and not stop.is_set():
                pass
            pause = settings.xapi_send_seconds
        except Exception as exc:  # the LRS or the database away: again, later
            log.warning("xAPI statements not sent yet", error=repr(exc), retry_in=pause)
            pause = min(LONGEST_PAUSE_SECONDS, pause * 2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=pause)
