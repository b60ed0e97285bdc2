"""Tables of the access service, in its own schema."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.clients.db import UtcDateTime, new_metadata
from shared.contracts.roles import Role

ROLE_NAMES = ", ".join(f"'{r.value}'" for r in Role)


class Base(DeclarativeBase):
    metadata = new_metadata()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN ({ROLE_NAMES})", name="known_role"),
        Index("ix_users_role_created_at", "role", "created_at", "id"),
        Index("ix_users_created_at", "created_at", "id"),
        Index("uq_users_home_class_username", "home_class_id", "username", unique=True),
        # Either a person with an email, or a class account with its username.
        CheckConstraint(
            "(email IS NOT NULL) OR (home_class_id IS NOT NULL AND username IS NOT NULL)",
            name="email_or_class_account",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Stored normalized (trimmed, lower case), so uniqueness is case-insensitive.
    # None for a class account (a child without email, #19): it signs in with its
    # class's code and its username instead.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    # A class account's name within its home class (the class it was made in).
    # No foreign key: the classes table refers to users (its teacher), and a
    # class is archived, never deleted.
    username: Mapped[str | None] = mapped_column(String(30))
    home_class_id: Mapped[uuid.UUID | None]
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    # The languages a story manager reviews (BCP 47 tags); empty: every language.
    review_languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The languages an ADMIN set (NULL: none set): the reviewer may narrow their
    # own list within them, never widen it.
    review_languages_ceiling: Mapped[list[str] | None] = mapped_column(JSON)
    # On what ground the platform holds this account's data (#41, consent.py's
    # Consent): a parent's consent (pending until given), the school's for a
    # class account, none needed at 13 or over, or not asked (made before #41).
    consent: Mapped[str] = mapped_column(
        String(20), default="not-asked", server_default="not-asked"
    )
    # The languages a reader says they read (#42): what their next books are in
    # until their reading says it (empty: not said).
    reading_languages: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RefreshToken(Base):
    """One link of a rotating refresh-token chain ("family").

    The token itself is never stored, only a SHA-256 of its secret part; a
    token presented after it was rotated (used) revokes its whole family.
    """

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family_id", "family_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    family_id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    secret_hash: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SigningKey(Base):
    """A JWT signing key pair; the private half encrypted with the key-encryption key."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(10))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Published in the JWKS from creation; signs from activates_at; stops
    # verifying at retires_at (after every token it signed has expired).
    activates_at: Mapped[datetime] = mapped_column(UtcDateTime)
    retires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Entitlement(Base):
    __tablename__ = "entitlements"
    __table_args__ = (
        # One active grant per user and book; history stays as revoked rows.
        Index(
            "uq_entitlements_active_user_book",
            "user_id",
            "book_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
            sqlite_where=text("revoked_at IS NULL"),
        ),
        Index("ix_entitlements_book_id", "book_id"),
        Index("ix_entitlements_granted_by", "granted_by"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    book_id: Mapped[uuid.UUID]
    source: Mapped[str] = mapped_column(String(50))
    granted_by: Mapped[uuid.UUID | None]
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_by: Mapped[uuid.UUID | None]
    # Set when a class assignment gave it (#19): removing the assignment, or the
    # learner from the class, takes back exactly these, never a purchase.
    assignment_id: Mapped[uuid.UUID | None] = mapped_column(index=True)


class CatalogBook(Base):
    """The access service's read model of books, built from content's book.* events."""

    __tablename__ = "catalog_books"

    book_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    title: Mapped[str | None] = mapped_column(String(300))
    language: Mapped[str | None] = mapped_column(String(20))
    # From book.* version 2; unknown (null) while only version 1 events were heard.
    reading_level: Mapped[str | None] = mapped_column(String(30))
    family_id: Mapped[uuid.UUID | None]
    access: Mapped[str] = mapped_column(String(10))
    published: Mapped[bool]
    # The time of the newest event applied, so a late, older event changes nothing.
    state_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # How much it is read lately (readers, weighted by recency), from the last
    # refit of the next-book model (#42, next_books.py).
    popularity: Mapped[float] = mapped_column(default=0.0, server_default="0")


class ReadingHistory(Base):
    """What each reader read (#42): a row per reader and book, from delivery's
    reading.opened and reading.completed events. Goes with the account."""

    __tablename__ = "reading_history"
    __table_args__ = (Index("ix_reading_history_book", "book_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    book_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    first_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_at: Mapped[datetime] = mapped_column(UtcDateTime)
    completed: Mapped[bool] = mapped_column(default=False)


class BookLikeness(Base):
    """The next-book model (#42): each book's nearest books, as the last refit
    found them (services/access/recommender.py)."""

    __tablename__ = "book_likeness"

    book_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    other_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    likeness: Mapped[float]


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at", "id"),
        Index("ix_audit_log_subject_id", "subject_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    actor_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(50))
    subject_type: Mapped[str] = mapped_column(String(30))
    subject_id: Mapped[uuid.UUID]
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class SchoolClass(Base):
    """A teacher's class (#19): its learners sign in with its code, and what it is
    assigned reaches every one of them."""

    __tablename__ = "classes"
    __table_args__ = (Index("ix_classes_teacher_created", "teacher_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    teacher_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(100))
    grade: Mapped[str | None] = mapped_column(String(30))
    # Letters and digits nobody misreads (no 0/O, 1/I/L); rotating it ends the old one.
    join_code: Mapped[str] = mapped_column(String(12), unique=True)
    # Joining ends then; signing in with the code does not (it names the class).
    join_code_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ClassMember(Base):
    __tablename__ = "class_members"
    __table_args__ = (Index("ix_class_members_user_id", "user_id"),)

    class_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("classes.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ClassAssignment(Base):
    """A book given to a whole class, learners who join later included."""

    __tablename__ = "class_assignments"
    __table_args__ = (
        # One live assignment of a book per class; removed ones stay as history.
        Index(
            "uq_class_assignments_live_class_book",
            "class_id",
            "book_id",
            unique=True,
            postgresql_where=text("removed_at IS NULL"),
            sqlite_where=text("removed_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    class_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"))
    book_id: Mapped[uuid.UUID]
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    assigned_by: Mapped[uuid.UUID]
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ParentalConsent(Base):
    """A parent's consent for a child under 13 who signed up themselves (#41): asked
    by mail at sign-up, given (or refused) through a signed link, withdrawn through
    another. Goes with the child's account; the audit log keeps what happened, by id."""

    __tablename__ = "parental_consents"
    __table_args__ = (Index("ix_parental_consents_expires_at", "expires_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    parent_email: Mapped[str] = mapped_column(String(320))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Unanswered by then, the child's account is erased (ACCESS_CONSENT_DAYS).
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    given_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class MailMessage(Base):
    """A mail waiting to be sent (mail_outbox.py): written in the transaction that
    decided to send it, sent by the worker, deleted once the server took it."""

    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_next_attempt_at", "next_attempt_at"),)

    # Also the mail's Message-ID, so a mail sent again after a crash reads as one.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(40))  # logged instead of the address
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # When a worker may take it next: moved ahead while one holds it (its lease),
    # and further each time the server is away.
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))


class DataExport(Base):
    """A copy of what the platform holds about a person, asked for (#41): gathered
    from each service's part (shared/bus/exports.py), then one archive offered
    by a signed link until `expires_at`. No foreign key: when the account is erased
    the row stays, cancelled, so the worker still removes any part a service writes
    late, and goes after `ACCESS_EXPORT_DAYS`."""

    __tablename__ = "data_exports"
    __table_args__ = (
        Index("ix_data_exports_user", "user_id", "requested_at"),
        Index("ix_data_exports_status", "status", "requested_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID]
    requested_by: Mapped[uuid.UUID | None]
    # gathering -> ready -> expired; or cancelled (the account was erased).
    status: Mapped[str] = mapped_column(String(12))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ready_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    archive_key: Mapped[str | None] = mapped_column(String(300))
