"""Tables of the content service, in its own schema: submissions, their history, books."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UtcDateTime, new_metadata


class Base(DeclarativeBase):
    metadata = new_metadata()


class SubmissionStatus(StrEnum):
    DRAFT = "DRAFT"
    SUBMITTED = "SUBMITTED"
    IN_REVIEW = "IN_REVIEW"
    CHANGES_REQUESTED = "CHANGES_REQUESTED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class BookStatus(StrEnum):
    DRAFT = "DRAFT"
    PUBLISHED = "PUBLISHED"
    UNPUBLISHED = "UNPUBLISHED"


class Submission(Base):
    __tablename__ = "submissions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    author_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(20))
    age_min: Mapped[int] = mapped_column(Integer)
    age_max: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(50))
    reading_level: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20))
    # Optimistic concurrency: every change bumps it; clients send it back in If-Match.
    version: Mapped[int] = mapped_column(Integer)
    # The key the latest presigned POST lets the author write (not yet verified).
    upload_key: Mapped[str | None] = mapped_column(String(300))
    upload_filename: Mapped[str | None] = mapped_column(String(200))
    # The verified manuscript: set by submit once the object passed every check.
    manuscript_key: Mapped[str | None] = mapped_column(String(300))
    manuscript_size: Mapped[int | None] = mapped_column(BigInteger)
    manuscript_filename: Mapped[str | None] = mapped_column(String(200))
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_submissions_author", "author_id", "created_at", "id"),
        # The review queue: oldest submission first within a status.
        Index("ix_submissions_queue", "status", "submitted_at", "id"),
    )


class SubmissionTransition(Base):
    """One step of a submission's history: who moved it, from what, to what, when, why."""

    __tablename__ = "submission_transitions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    submission_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    actor_role: Mapped[str] = mapped_column(String(20))
    notes: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_submission_transitions_submission", "submission_id", "at", "id"),)


class Book(Base):
    __tablename__ = "books"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    submission_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(20))
    age_min: Mapped[int] = mapped_column(Integer)
    age_max: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(50))
    reading_level: Mapped[str] = mapped_column(String(30))
    access: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    # The PDF this book publishes (a verified manuscript in the uploads bucket).
    source_key: Mapped[str] = mapped_column(String(300))
    source_filename: Mapped[str | None] = mapped_column(String(200))
    # The published cover (in the published bucket), and one uploaded but not
    # yet checked (in the uploads bucket), which the next publication takes.
    cover_key: Mapped[str | None] = mapped_column(String(300))
    cover_upload_key: Mapped[str | None] = mapped_column(String(300))
    # What the published bucket serves; each publication gets a new key.
    edition: Mapped[int] = mapped_column(Integer, default=0)
    object_key: Mapped[str | None] = mapped_column(String(300))
    object_version: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        # The catalog: newest publication first, only published rows indexed.
        Index(
            "ix_books_catalog",
            "published_at",
            "id",
            postgresql_where=text("status = 'PUBLISHED'"),
            sqlite_where=text("status = 'PUBLISHED'"),
        ),
        Index(
            "ix_books_catalog_language",
            "language",
            "published_at",
            "id",
            postgresql_where=text("status = 'PUBLISHED'"),
            sqlite_where=text("status = 'PUBLISHED'"),
        ),
        Index(
            "ix_books_catalog_category",
            "category",
            "published_at",
            "id",
            postgresql_where=text("status = 'PUBLISHED'"),
            sqlite_where=text("status = 'PUBLISHED'"),
        ),
        Index("ix_books_status", "status", "updated_at", "id"),
    )
