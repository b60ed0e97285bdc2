"""Tables of the delivery service, in its own schema: what is published, who read how far."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.clients.db import UtcDateTime, new_metadata


class Base(DeclarativeBase):
    metadata = new_metadata()


class PublishedBook(Base):
    """Each book's current published object, as content's events describe it."""

    __tablename__ = "published_books"

    book_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    published: Mapped[bool] = mapped_column(Boolean)
    object_key: Mapped[str | None] = mapped_column(String(300))
    object_version: Mapped[str | None] = mapped_column(String(200))
    access: Mapped[str] = mapped_column(String(10))
    # The time of the newest event applied: an older one arriving late changes nothing.
    state_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The lite edition (book.processed), and the object version of the publication
    # it was made from: served only while that is still the published one.
    lite_key: Mapped[str | None] = mapped_column(String(300))
    lite_version: Mapped[str | None] = mapped_column(String(200))
    lite_source_version: Mapped[str | None] = mapped_column(String(200))
    # Pages of the publication (book.processed): a reading app's progression needs
    # no length of its own (#20).
    page_count: Mapped[int | None] = mapped_column(Integer)


class Reader(Base):
    """Each account's current role, from access's `user.registered` and `role.assigned`,
    so a link is decided on the role the account has now, not the one in its token."""

    __tablename__ = "readers"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    # The time of the newest event applied: an older one arriving late changes nothing.
    role_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReaderEntitlement(Base):
    """Entitlements, from access's `entitlement.granted` and `entitlement.revoked`.

    Keyed by the entitlement's id, so the two events commute: a revocation that
    arrives before its grant leaves a revoked row that the grant cannot revive.
    """

    __tablename__ = "reader_entitlements"

    entitlement_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    book_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (Index("ix_reader_entitlements_user", "user_id"),)


class ReadingProgress(Base):
    __tablename__ = "reading_progress"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    book_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    page: Mapped[int] = mapped_column(Integer)
    total_pages: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The page last announced in a reading.progressed event (events are coalesced).
    announced_page: Mapped[int] = mapped_column(Integer, default=0)
    # The last progression a reading app stored (#20, OPDS Progression): when that
    # reading happened on the device, and which device. An older one is stale.
    modified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    device_id: Mapped[str | None] = mapped_column(String(64))
    device_name: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (Index("ix_reading_progress_user", "user_id", "updated_at"),)


class OfflineReadingEvent(Base):
    """Each reading event a device uploaded after reading offline (#20), by the id the
    device gave it: a retried upload finds its ids here and changes nothing."""

    __tablename__ = "offline_reading_events"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))
    book_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    happened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # An open's hour (NULL for other events): one open per reader, book and hour
    # counts, the rest pass as duplicates (#37 F10).
    open_hour: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        # Ids older than the oldest event accepted can go (see offline.py).
        Index("ix_offline_reading_events_received", "received_at"),
        Index(
            "uq_offline_reading_events_open_hour", "user_id", "book_id", "open_hour", unique=True
        ),
    )
