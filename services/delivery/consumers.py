"""Events the delivery service reacts to: `HANDLERS = {EventContract: handler}`.

Which object each published book serves, from content's `book.published` and
`book.unpublished` (newest event wins; a late older one changes nothing), and
revoked entitlements, which must stop new links at once. Every change tells
the API instances over pub/sub to drop what they cached.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.delivery.models import PublishedBook
from services.delivery.repository import DeliveryRepository
from services.delivery.service import BOOKS_CHANNEL
from shared.consumer import EventContext, Handlers
from shared.events import BookPublished, BookUnpublished, EntitlementRevoked


async def _book_row(context: EventContext, book_id: uuid.UUID) -> PublishedBook:
    repository = DeliveryRepository(context.session)
    row = await repository.published_book(book_id, for_update=True)
    if row is None:
        row = PublishedBook(
            book_id=book_id,
            published=False,
            access="entitled",
            state_changed_at=datetime.min.replace(tzinfo=UTC),
        )
        repository.add(row)
    return row


def _tell_instances_after_commit(context: EventContext, book_id: uuid.UUID) -> None:
    async def tell() -> None:
        await context.resources.bus.publish(BOOKS_CHANNEL, str(book_id))

    context.after_commit(tell)


async def record_published(context: EventContext, event: BookPublished) -> None:
    row = await _book_row(context, event.book_id)
    if context.envelope.time >= row.state_changed_at:
        row.published = True
        row.object_key = event.object_key
        row.object_version = event.object_version
        row.access = event.access
        row.state_changed_at = context.envelope.time
    _tell_instances_after_commit(context, event.book_id)


async def record_unpublished(context: EventContext, event: BookUnpublished) -> None:
    row = await _book_row(context, event.book_id)
    if context.envelope.time >= row.state_changed_at:
        row.published = False
        row.state_changed_at = context.envelope.time
    _tell_instances_after_commit(context, event.book_id)


async def forget_revoked_grant(context: EventContext, event: EntitlementRevoked) -> None:
    # Access already tells every instance when it revokes; this covers a lost
    # message (and any cache that outlived it), at the cost of one more drop.
    context.after_commit(lambda: context.resources.decisions.invalidate_user(event.user_id))


HANDLERS: Handlers = {
    BookPublished: record_published,
    BookUnpublished: record_unpublished,
    EntitlementRevoked: forget_revoked_grant,
}
