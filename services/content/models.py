"""Tables of the content service, in its own schema: submissions, their history, books."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

from shared.clients.db import UtcDateTime, new_metadata


class Base(DeclarativeBase):
    metadata = new_metadata()


# PostgreSQL's text-search configurations by primary language subtag (every one
# ships with PostgreSQL 13 and later): a book's title and summary are stemmed in
# its own language, so "foxes" finds "fox". Other languages match whole words.
TEXT_SEARCH_CONFIGS: dict[str, str] = {
    "ar": "arabic",
    "da": "danish",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "id": "indonesian",
    "it": "italian",
    "ne": "nepali",
    "nl": "dutch",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
}
SIMPLE_SEARCH = "simple"


def text_search_config(language: str) -> str:
    return TEXT_SEARCH_CONFIGS.get(language.split("-")[0].lower(), SIMPLE_SEARCH)


def _search_config_of_insert(context: DefaultExecutionContext) -> str:
    # Called per row, also for a many-row insert: the row being written.
    row = context.current_parameters or {}
    return text_search_config(str(row["language"]))


# Credits: [{"role", "name", "account_id"}], in the order they are shown.
Credits = JSON().with_variant(JSONB(), "postgresql")
Analysis = JSON().with_variant(JSONB(), "postgresql")


class StoryFamilyColumns:
    """Where a story comes from: its family, its source and how it was derived.

    Pinned when the submission starts (a derivation cannot later be re-pointed at
    another source or family) and copied to the book made from it.
    """

    # A row written without one (a seed, a bulk import) is an original, its own family.
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, default=uuid.uuid4)
    derived_from: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    derivation: Mapped[str] = mapped_column(String(20), default="original")
    credits: Mapped[list[dict[str, Any]]] = mapped_column(Credits, default=list)
    licence: Mapped[str] = mapped_column(String(20), default="CC-BY-4.0")


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


class Submission(StoryFamilyColumns, Base):
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
    # What the check read: the copy's SHA-256 and S3 version. Review reads and
    # publication copies that version, and publication compares the digest.
    manuscript_sha256: Mapped[str | None] = mapped_column(String(64))
    manuscript_version: Mapped[str | None] = mapped_column(String(200))
    # What the pinned manuscript's text says (services/content/manuscript_analysis.py):
    # measured at submit, from those bytes; compared with the metadata when read.
    analysis: Mapped[dict[str, Any] | None] = mapped_column(Analysis)
    # A severe finding (a child's contact details) holds it from approval until a
    # CONTENT_ADMIN clears it; the clearance is for those bytes, by their SHA-256.
    held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Something in it a reviewer must look at (a warning or worse): first in the queue.
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    hold_cleared_sha256: Mapped[str | None] = mapped_column(String(64))
    # The level its reviewer confirmed or corrected at approval, who and when:
    # what `stories reading-levels fit` learns each language's thresholds from.
    confirmed_level: Mapped[str | None] = mapped_column(String(20))
    level_confirmed_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    level_confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_submissions_author", "author_id", "created_at", "id"),
        # The review queue: flagged work first, then the oldest, within a status.
        Index("ix_submissions_queue", "status", "flagged", "submitted_at", "id"),
    )


class ReadingLevelThresholds(Base):
    """A language's fitted thresholds: the scores where early, transitional and
    fluent begin (services/content/calibration.py)."""

    __tablename__ = "reading_level_thresholds"

    language: Mapped[str] = mapped_column(String(35), primary_key=True)
    thresholds: Mapped[list[float]] = mapped_column(Analysis)
    samples: Mapped[int] = mapped_column(Integer)
    fitted_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ManuscriptFingerprint(Base):
    """What near-duplicates are found by (services/content/duplicates.py): the
    MinHash of a submitted manuscript's text (None: too little text) and the
    perceptual hashes of its illustrations."""

    __tablename__ = "manuscript_fingerprints"

    submission_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    signature: Mapped[list[int] | None] = mapped_column(Analysis)
    illustrations: Mapped[list[str]] = mapped_column(Analysis)


class FingerprintBand(Base):
    """One LSH band of a fingerprint: manuscripts that share one are compared."""

    __tablename__ = "fingerprint_bands"

    band: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    submission_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)

    __table_args__ = (Index("ix_fingerprint_bands_submission", "submission_id"),)


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


class Book(StoryFamilyColumns, Base):
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
    # What the analysis of its manuscript estimated (None: no text layer, or a
    # book from before #40); `reading_level` is the one its reviewer stood by.
    estimated_level: Mapped[str | None] = mapped_column(String(20))
    access: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    # The PDF this book publishes (a verified manuscript in the uploads bucket).
    source_key: Mapped[str] = mapped_column(String(300))
    source_filename: Mapped[str | None] = mapped_column(String(200))
    # The checked manuscript's digest and version, pinned at submit (NULL on rows
    # from before content_0008, which publish by key).
    source_sha256: Mapped[str | None] = mapped_column(String(64))
    source_version: Mapped[str | None] = mapped_column(String(200))
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
    # The newer version of the same family, language and level that took this
    # one's place in the catalog when it was published.
    superseded_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Follows the language (on insert, and on every change through the ORM).
    search_config: Mapped[str] = mapped_column(String(20), default=_search_config_of_insert)
    # What processing found and made of the current publication (pdfprocess.py);
    # `processed_version` is the published object version they belong to, so a
    # redelivered or stale book.published changes nothing.
    processed_version: Mapped[str | None] = mapped_column(String(200))
    page_count: Mapped[int | None] = mapped_column(Integer)
    # [{format, object_key, object_version, size_bytes}], as book.processed says.
    formats: Mapped[list[dict[str, Any]] | None] = mapped_column(Credits)
    # width -> key in the published bucket (public, under covers/).
    thumbnail_keys: Mapped[dict[str, str] | None] = mapped_column(Credits)
    # The pages' text, searched with title and summary in the book's language.
    body_text: Mapped[str] = mapped_column(Text, default="", server_default="")

    @validates("language")
    def _follow_language(self, _key: str, language: str) -> str:
        self.search_config = text_search_config(language)
        return language

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
        Index("ix_books_family", "family_id", "language", "reading_level"),
        # One published book per family, language and level: a second publication
        # into the same slot retires the first; a race between two fails here.
        Index(
            "uq_books_published_version",
            "family_id",
            "language",
            "reading_level",
            unique=True,
            postgresql_where=text("status = 'PUBLISHED'"),
            sqlite_where=text("status = 'PUBLISHED'"),
        ),
    )
