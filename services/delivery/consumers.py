"""Events the delivery service reacts to: `HANDLERS = {EventContract: handler}`.

Delivery decides links on its own (services/delivery/links.py), over a read
model kept from events:
- which object each published book serves and whether it is free, from
  content's `book.published`, `book.updated` and `book.unpublished`, and its lite
  edition from `book.processed`;
- each account's current role, from access's `user.registered` and `role.assigned`;
- each reader's entitlements, from `entitlement.granted` and `entitlement.revoked`.

Every handler commutes: the newest event wins (a late older one changes
nothing), and a revocation applied before its grant stays a revocation. Every
change tells the API instances over pub/sub, after commit, to drop what they
cached about that book or that reader.
"""

from __future__ import annotations

import uuid

from services.delivery.data_export import write_delivery_part
from services.delivery.links import BOOKS_CHANNEL, READERS_CHANNEL
from services.delivery.models import PublishedBook
from services.delivery.repository import DeliveryRepository
from shared.bus.consumer import EventContext, Handlers
from shared.bus.read_models import NEVER, latest_wins
from shared.contracts.events import (
    BookProcessed,
    BookPublished,
    BookPublishedV1,
    BookUnpublished,
    BookUpdated,
    BookUpdatedV1,
    EntitlementGranted,
    EntitlementRevoked,
    RoleAssigned,
    UserErased,
    UserExportRequested,
    UserRegistered,
)


async def _book_row(context: EventContext, book_id: uuid.UUID) -> PublishedBook:
    repository = DeliveryRepository(context.session)
    row = await repository.published_book(book_id, for_update=True)
    if row is None:
        row = PublishedBook(
            book_id=book_id,
            published=False,
            access="entitled",
            state_changed_at=NEVER,
        )
        repository.add(row)
    return row


def _tell_instances_after_commit(context: EventContext, channel: str, key: uuid.UUID) -> None:
    async def tell() -> None:
        await context.resources.bus.publish(channel, str(key))

    context.after_commit(tell)


# book.published and book.updated come in version 1 or 2 (during a rollout);
# delivery reads only what both carry.
async def record_published(context: EventContext, event: BookPublished | BookPublishedV1) -> None:
    row = await _book_row(context, event.book_id)
    if latest_wins(context.envelope.time, row.state_changed_at):
        row.published = True
        row.object_key = event.object_key
        row.object_version = event.object_version
        row.access = event.access
        row.state_changed_at = context.envelope.time
    _tell_instances_after_commit(context, BOOKS_CHANNEL, event.book_id)


async def record_updated(context: EventContext, event: BookUpdated | BookUpdatedV1) -> None:
    # Carries the book's whole current state, but not its object: a book.updated
    # saying "published" for a book never seen published here serves nothing yet.
    row = await _book_row(context, event.book_id)
    if latest_wins(context.envelope.time, row.state_changed_at):
        row.access = event.access
        row.published = event.published and row.object_key is not None
        row.state_changed_at = context.envelope.time
    _tell_instances_after_commit(context, BOOKS_CHANNEL, event.book_id)


async def record_processed(context: EventContext, event: BookProcessed) -> None:
    # May arrive before its book.published (SQS keeps no order): kept with the
    # publication it belongs to, and served only while that one is current.
    row = await _book_row(context, event.book_id)
    lite = next((f for f in event.formats if f.format == "pdf-lite"), None)
    current = row.object_version
    keeps_current = row.lite_source_version == current and event.source_version != current
    if lite is not None and not keeps_current:
        row.lite_key = lite.object_key
        row.lite_version = lite.object_version
        row.lite_source_version = event.source_version
    if event.source_version == current or row.page_count is None:
        row.page_count = event.page_count
    _tell_instances_after_commit(context, BOOKS_CHANNEL, event.book_id)


async def record_unpublished(context: EventContext, event: BookUnpublished) -> None:
    row = await _book_row(context, event.book_id)
    if latest_wins(context.envelope.time, row.state_changed_at):
        row.published = False
        row.state_changed_at = context.envelope.time
    _tell_instances_after_commit(context, BOOKS_CHANNEL, event.book_id)


async def record_registered(context: EventContext, event: UserRegistered) -> None:
    await DeliveryRepository(context.session).set_reader_role(
        event.user_id, event.role.value, context.envelope.time
    )
    _tell_instances_after_commit(context, READERS_CHANNEL, event.user_id)


async def record_role(context: EventContext, event: RoleAssigned) -> None:
    await DeliveryRepository(context.session).set_reader_role(
        event.user_id, event.role.value, context.envelope.time
    )
    _tell_instances_after_commit(context, READERS_CHANNEL, event.user_id)


async def forget_reader(context: EventContext, event: UserErased) -> None:
    """#19: an erased learner: their reading goes, their entitlements end (kept as
    revoked, so a grant arriving late cannot revive one), their role goes."""
    await DeliveryRepository(context.session).forget_reader(event.user_id)
    _tell_instances_after_commit(context, READERS_CHANNEL, event.user_id)


async def record_granted(context: EventContext, event: EntitlementGranted) -> None:
    await DeliveryRepository(context.session).add_entitlement(
        event.entitlement_id, event.user_id, event.book_id, event.expires_at
    )
    _tell_instances_after_commit(context, READERS_CHANNEL, event.user_id)


async def record_revoked(context: EventContext, event: EntitlementRevoked) -> None:
    await DeliveryRepository(context.session).revoke_entitlement(
        event.entitlement_id, event.user_id, event.book_id
    )
    _tell_instances_after_commit(context, READERS_CHANNEL, event.user_id)


HANDLERS: Handlers = {
    UserExportRequested: write_delivery_part,
    BookPublished: record_published,
    BookUpdated: record_updated,
    BookUnpublished: record_unpublished,
    BookProcessed: record_processed,
    UserRegistered: record_registered,
    UserErased: forget_reader,
    RoleAssigned: record_role,
    EntitlementGranted: record_granted,
    EntitlementRevoked: record_revoked,
}
