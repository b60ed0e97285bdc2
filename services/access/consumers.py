"""Events the access service reacts to: `HANDLERS = {EventContract: handler}`.
A handler of book.published or book.updated takes version 1 or 2 (see
shared/contracts/events.py ACCEPTED_LEGACY_CONTRACTS).

The read model of books: which exist, which are published and whether they are
free. Events may arrive late or out of order; each row remembers the time of
the newest event applied and ignores older ones (shared/bus/read_models.py).
"""

from __future__ import annotations

import uuid

from services.access.data_export import write_access_part
from services.access.models import CatalogBook
from services.access.next_books import (
    model_changed_after_commit,
    record_read,
    refit_after_erasure,
)
from services.access.repository import AccessRepository
from shared.bus.consumer import EventContext, Handlers
from shared.bus.read_models import NEVER, latest_wins
from shared.clients.db import upsert
from shared.contracts.events import (
    BookCreated,
    BookLineage,
    BookPublished,
    BookPublishedV1,
    BookUnpublished,
    BookUpdated,
    BookUpdatedV1,
    DeliveryIssued,
    ReadingCompleted,
    ReadingOpened,
    UserErased,
    UserExportRequested,
)


async def _book_row(context: EventContext, book_id: uuid.UUID) -> CatalogBook:
    repository = AccessRepository(context.session)
    row = await repository.book(book_id, for_update=True)
    if row is None:
        # Two events of a new book, handled at once (book.created and book.published
        # in two batches), both found no row: inserting both made the second fail on
        # the key and wait for a redelivery. The second now waits for the first's
        # row and takes it.
        await context.session.execute(
            upsert(context.session, CatalogBook)
            .values(book_id=book_id, access="entitled", published=False, state_changed_at=NEVER)
            .on_conflict_do_nothing(index_elements=["book_id"])
        )
        row = await repository.book(book_id, for_update=True)
        assert row is not None
    return row


def _forget_decisions_after_commit(context: EventContext) -> None:
    # Any cached decision may depend on this book: retire them all (books change rarely).
    context.after_commit(context.resources.decisions.invalidate_all)
    # And the next-book model's copy of the books (next_books.py).
    model_changed_after_commit(context)


async def record_book_created(context: EventContext, event: BookCreated) -> None:
    row = await _book_row(context, event.book_id)
    row.title = event.title
    row.language = event.language
    if latest_wins(context.envelope.time, row.state_changed_at):
        row.access = event.access
        row.state_changed_at = context.envelope.time
    _forget_decisions_after_commit(context)


def _follow_lineage(row: CatalogBook, event: object) -> None:
    # Version 1 (an older producer during a rollout) says nothing of it: what a
    # version 2 event taught stays.
    if isinstance(event, BookLineage):
        row.reading_level = event.reading_level
        row.family_id = event.family_id


async def record_book_updated(context: EventContext, event: BookUpdated | BookUpdatedV1) -> None:
    row = await _book_row(context, event.book_id)
    if latest_wins(context.envelope.time, row.state_changed_at):
        row.title = event.title
        row.language = event.language
        row.access = event.access
        row.published = event.published
        _follow_lineage(row, event)
        row.state_changed_at = context.envelope.time
    _forget_decisions_after_commit(context)


async def record_book_published(
    context: EventContext, event: BookPublished | BookPublishedV1
) -> None:
    row = await _book_row(context, event.book_id)
    if latest_wins(context.envelope.time, row.state_changed_at):
        row.published = True
        row.access = event.access
        row.language = event.language
        _follow_lineage(row, event)
        row.state_changed_at = context.envelope.time
    _forget_decisions_after_commit(context)


async def record_book_unpublished(context: EventContext, event: BookUnpublished) -> None:
    row = await _book_row(context, event.book_id)
    if latest_wins(context.envelope.time, row.state_changed_at):
        row.published = False
        row.state_changed_at = context.envelope.time
    _forget_decisions_after_commit(context)


HANDLERS: Handlers = {
    BookCreated: record_book_created,
    BookUpdated: record_book_updated,
    BookPublished: record_book_published,
    BookUnpublished: record_book_unpublished,
    # Access writes its part of a person's export as the other services do (#41).
    UserExportRequested: write_access_part,
    # What each reader read, and the model without an erased one (#42).
    DeliveryIssued: record_read,
    ReadingOpened: record_read,
    ReadingCompleted: record_read,
    UserErased: refit_after_erasure,
}
