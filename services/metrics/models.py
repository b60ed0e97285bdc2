"""Tables of the metrics service, in its own schema.

`event_log` keeps every event as received (reading events for
`METRICS_RAW_EVENT_DAYS`, then only what they added: the folded tables below);
everything else is derived from the two (and can be rebuilt from them: `stories
metrics rebuild`). The derived tables are
of two kinds: counters per metric, hour and dimension, which only ever add;
and each entity's current state (a user's role, a submission's status), where
an event older than the state it would replace changes nothing, so events
arriving late or out of order leave the same result as events in order.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.clients.db import UtcDateTime, new_metadata


class Base(DeclarativeBase):
    metadata = new_metadata()


class RecordedEvent(Base):
    """Every event the platform emitted, as received: the log aggregates are rebuilt from."""

    __tablename__ = "event_log"
    __table_args__ = (Index("ix_event_log_type_occurred_at", "event_type", "occurred_at"),)

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100))
    # The payload's contract version, so a rebuild reads each event as it was written.
    dataversion: Mapped[str] = mapped_column(String(10), server_default="1")
    source: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class HourlyCountColumns:
    metric: Mapped[str] = mapped_column(String(40), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(60), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class HourlyCount(HourlyCountColumns, Base):
    """How many times something happened in an hour (by when it happened, not when
    we heard of it), in total (dimension "") and per dimension ("role:LEARNER",
    "language:sw", "book:<id>")."""

    __tablename__ = "hourly_counts"


class ReaderHourColumns:
    hour: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    book_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    opens: Mapped[int] = mapped_column(Integer, server_default="0")


class ReaderHour(ReaderHourColumns, Base):
    """A reader opened a book in an hour (this many times): distinct readers over any
    window, exactly, and the opens of any set of readers (a teacher's learners)."""

    __tablename__ = "reader_hours"
    __table_args__ = (Index("ix_reader_hours_book", "book_id", "user_id"),)


class UserState(Base):
    __tablename__ = "users"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    role_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    registered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SubmissionState(Base):
    """Where a submission stands and when it passed each step of the workflow."""

    __tablename__ = "submissions"
    __table_args__ = (Index("ix_submissions_status", "status", "last_submitted_at"),)

    submission_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    language: Mapped[str | None] = mapped_column(String(20))
    # The story family, from submission.submitted version 2 (null before).
    family_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(20))
    status_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # What its analysis flagged at its last submit (submission.submitted version 3):
    # finding kinds, comma-separated, severe first; "" for nothing, null before v3.
    flags: Mapped[str | None] = mapped_column(String(400))


class Review(Base):
    """One review decision and how long the submission had waited for it."""

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_decided_at", "decided_at"),)

    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    submission_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    decision: Mapped[str] = mapped_column(String(20))
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime)
    seconds_waited: Mapped[float] = mapped_column(Float)


class BookState(Base):
    __tablename__ = "books"
    __table_args__ = (
        Index("ix_books_submission", "submission_id"),
        Index("ix_books_family", "family_id"),
    )

    book_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    submission_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    title: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(20))
    # From book.* version 2 (null for a book heard of only in version 1).
    family_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    reading_level: Mapped[str | None] = mapped_column(String(30))
    derivation: Mapped[str | None] = mapped_column(String(20))
    published: Mapped[bool] = mapped_column(Boolean)
    state_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    first_published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class BookGrant(Base):
    """A teacher granted this book to someone: the teacher may see its figures."""

    __tablename__ = "book_grants"

    teacher_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    book_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)


class SketchedHour(Base):
    """An hour whose readers go into Redis's sketches. `pending` counts the batches
    whose sketch write is not confirmed yet: an hour with pending > 0 (or any hour,
    once Redis lost its data) is counted in PostgreSQL until the worker reseals it."""

    __tablename__ = "reader_sketch_hours"

    hour: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    pending: Mapped[int] = mapped_column(Integer, server_default="0")


class TeacherLearner(Base):
    """A teacher granted this book to this learner: the teacher's figures for the
    book count this learner (and only the learners they granted it to)."""

    __tablename__ = "teacher_learners"

    teacher_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    book_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)


class ReadingColumns:
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    book_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    page: Mapped[int] = mapped_column(Integer)
    total_pages: Mapped[int | None] = mapped_column(Integer)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    opens: Mapped[int] = mapped_column(Integer, server_default="0")
    first_opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_read_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ReadingState(ReadingColumns, Base):
    """One reader and one book: how often they opened it, the furthest page they
    announced (none yet: `total_pages` is null), when they finished, and when they
    last did any of it (a class report's "last read")."""

    __tablename__ = "reading"
    __table_args__ = (Index("ix_reading_book", "book_id"),)


# What reading events past `METRICS_RAW_EVENT_DAYS` added to the figures, once
# their raw rows left the event log (#41, retention.py): the same shapes as the
# live tables above, which already hold it all. These are kept because a rebuild
# can no longer replay those events: it starts from these, then replays the log.
# Never cleared by a rebuild; after an erasure they stay under the account's id,
# which then names nobody, as the live rows do (projectors._user_erased).


class FoldedHourlyCount(HourlyCountColumns, Base):
    __tablename__ = "folded_hourly_counts"


class FoldedReaderHour(ReaderHourColumns, Base):
    __tablename__ = "folded_reader_hours"
    __table_args__ = (Index("ix_folded_reader_hours_user", "user_id"),)


class FoldedReading(ReadingColumns, Base):
    __tablename__ = "folded_reading"


class ClassState(Base):
    """A class (#19) and its teacher, from access's class events: whose class
    figures these are. Ids only; names stay in access."""

    __tablename__ = "classes"

    class_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    teacher_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class ClassMembership(Base):
    """Whether a learner is in a class now; the newest event wins (a learner may
    leave and join again, and events may come out of order)."""

    __tablename__ = "class_members"
    __table_args__ = (Index("ix_class_members_user", "user_id"),)

    class_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    member: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ClassAssignmentState(Base):
    """A book assigned to a class, until it is taken back (`removed_at`)."""

    __tablename__ = "class_assignments"
    __table_args__ = (Index("ix_class_assignments_class", "class_id"),)

    assignment_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    class_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    book_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    assigned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class XapiOutbox(Base):
    """Logged events whose xAPI statements the LRS has not taken yet (#20, xapi.py)."""

    __tablename__ = "xapi_outbox"
    __table_args__ = (Index("ix_xapi_outbox_occurred_at", "occurred_at"),)

    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
