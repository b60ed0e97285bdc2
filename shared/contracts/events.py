"""Event contracts: one typed payload per event type (their CloudEvents 1.0 envelope
is envelope.py).

Plain pydantic models with no I/O, so producers, consumers and tests all agree on
the exact shape. A payload's `dataversion` changes only when its shape does;
consumers refuse versions they do not know rather than guess.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.contracts.roles import Role


class Producer(StrEnum):
    ACCESS = "access"
    CONTENT = "content"
    DELIVERY = "delivery"


class EventData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ClassVar[str]
    version: ClassVar[str] = "1"
    producer: ClassVar[Producer]
    subject_field: ClassVar[str]

    @property
    def subject(self) -> str:
        return str(getattr(self, self.subject_field))


BookAccess = Literal["free", "entitled"]
ReviewDecision = Literal["approve", "request_changes", "reject"]
BookDerivation = Literal["original", "translation", "adaptation"]


class UserRegistered(EventData):
    type = "user.registered"
    producer = Producer.ACCESS
    subject_field = "user_id"
    user_id: uuid.UUID
    role: Role


class UserErased(EventData):
    """A learner account erased (#19): its name and username are gone from access;
    every service drops what it holds about the person, while figures stay,
    counted under an id that now names nobody."""

    type = "user.erased"
    producer = Producer.ACCESS
    subject_field = "user_id"
    user_id: uuid.UUID
    erased_by: uuid.UUID | None


class UserExportRequested(EventData):
    """A copy of what the platform holds about a person was asked for (#41): each
    service writes its part of the export to the exports bucket
    (shared/bus/exports.py), and access assembles the archive from them."""

    type = "user.export_requested"
    producer = Producer.ACCESS
    subject_field = "user_id"
    export_id: uuid.UUID
    user_id: uuid.UUID


class UserLoggedIn(EventData):
    type = "user.logged_in"
    producer = Producer.ACCESS
    subject_field = "user_id"
    user_id: uuid.UUID
    role: Role


class RoleAssigned(EventData):
    type = "role.assigned"
    producer = Producer.ACCESS
    subject_field = "user_id"
    user_id: uuid.UUID
    previous_role: Role
    role: Role
    assigned_by: uuid.UUID | None


class EntitlementGranted(EventData):
    type = "entitlement.granted"
    producer = Producer.ACCESS
    subject_field = "entitlement_id"
    entitlement_id: uuid.UUID
    user_id: uuid.UUID
    book_id: uuid.UUID
    source: str
    granted_by: uuid.UUID | None
    expires_at: datetime | None = None


class EntitlementRevoked(EventData):
    type = "entitlement.revoked"
    producer = Producer.ACCESS
    subject_field = "entitlement_id"
    entitlement_id: uuid.UUID
    user_id: uuid.UUID
    book_id: uuid.UUID
    revoked_by: uuid.UUID | None


class ClassMemberJoined(EventData):
    """A learner joined a class (#19): a class account made by the teacher, one who
    signed up with the code, or a signed-in learner who typed it. No name: figures
    count ids, and the event log outlives an erasure."""

    type = "class.member_joined"
    producer = Producer.ACCESS
    subject_field = "class_id"
    class_id: uuid.UUID
    teacher_id: uuid.UUID
    user_id: uuid.UUID


class ClassMemberLeft(EventData):
    type = "class.member_left"
    producer = Producer.ACCESS
    subject_field = "class_id"
    class_id: uuid.UUID
    user_id: uuid.UUID


class ClassBookAssigned(EventData):
    """A teacher assigned a book to a class: every member, now and later, may read it."""

    type = "class.book_assigned"
    producer = Producer.ACCESS
    subject_field = "class_id"
    assignment_id: uuid.UUID
    class_id: uuid.UUID
    teacher_id: uuid.UUID
    book_id: uuid.UUID
    due_at: datetime | None = None


class ClassBookUnassigned(EventData):
    type = "class.book_unassigned"
    producer = Producer.ACCESS
    subject_field = "class_id"
    assignment_id: uuid.UUID
    class_id: uuid.UUID
    book_id: uuid.UUID


class SubmissionCreated(EventData):
    type = "submission.created"
    producer = Producer.CONTENT
    subject_field = "submission_id"
    submission_id: uuid.UUID
    author_id: uuid.UUID
    language: str
    category: str


class SubmissionSubmittedV1(EventData):
    """submission.submitted as content wrote it before story families (still accepted)."""

    type = "submission.submitted"
    producer = Producer.CONTENT
    subject_field = "submission_id"
    submission_id: uuid.UUID
    author_id: uuid.UUID


class SubmissionSubmittedV2(EventData):
    """submission.submitted before its analysis's flags (still accepted)."""

    type = "submission.submitted"
    version = "2"
    producer = Producer.CONTENT
    subject_field = "submission_id"
    submission_id: uuid.UUID
    author_id: uuid.UUID
    language: str
    family_id: uuid.UUID


FindingKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z-]{1,39}$")]


class SubmissionSubmitted(SubmissionSubmittedV2):
    """A submission went (back) to review, in this language of this story family,
    with the kinds of what its analysis flagged (codes only: never an excerpt)."""

    version = "3"
    flags: list[FindingKind] = Field(
        default_factory=list, max_length=20, description="Warnings and worse, severe first"
    )
    held: bool = False


class SubmissionReviewed(EventData):
    type = "submission.reviewed"
    producer = Producer.CONTENT
    subject_field = "submission_id"
    submission_id: uuid.UUID
    reviewer_id: uuid.UUID
    decision: ReviewDecision
    seconds_since_submitted: float


class BookCreated(EventData):
    type = "book.created"
    producer = Producer.CONTENT
    subject_field = "book_id"
    book_id: uuid.UUID
    submission_id: uuid.UUID
    title: str
    language: str
    access: BookAccess


class BookUpdatedV1(EventData):
    """book.updated as content wrote it before story families (still accepted)."""

    type = "book.updated"
    producer = Producer.CONTENT
    subject_field = "book_id"
    book_id: uuid.UUID
    title: str
    language: str
    access: BookAccess
    published: bool


class BookPublishedV1(EventData):
    """book.published as content wrote it before story families (still accepted)."""

    type = "book.published"
    producer = Producer.CONTENT
    subject_field = "book_id"
    book_id: uuid.UUID
    object_key: str
    object_version: str
    access: BookAccess
    language: str


class BookLineage(EventData):
    """Where a book comes from: its story family, its source, how it was derived, under
    what licence, at which language and reading level (book.* version 2)."""

    family_id: uuid.UUID
    derived_from: uuid.UUID | None
    derivation: BookDerivation
    reading_level: str
    licence: str


class BookUpdated(BookLineage):
    """A book's catalog metadata or access level changed (its full current state)."""

    type = "book.updated"
    version = "2"
    producer = Producer.CONTENT
    subject_field = "book_id"
    book_id: uuid.UUID
    title: str
    language: str
    access: BookAccess
    published: bool


class BookPublished(BookLineage):
    type = "book.published"
    version = "2"
    producer = Producer.CONTENT
    subject_field = "book_id"
    book_id: uuid.UUID
    object_key: str
    object_version: str
    access: BookAccess
    language: str


# `pdf` as published; `pdf-lite` with its pictures made light for slow connections.
BookFormatName = Literal["pdf", "pdf-lite"]


class BookFormat(BaseModel):
    """One file a published book can be read in."""

    format: BookFormatName
    object_key: str
    object_version: str
    size_bytes: int


class BookProcessed(EventData):
    """A publication was processed (services/content/pdfprocess.py): its page count,
    and every format it can now be read in, each with its object and size. Refers to
    the publication by `source_version`, the object version of its book.published."""

    type = "book.processed"
    producer = Producer.CONTENT
    subject_field = "book_id"
    book_id: uuid.UUID
    source_version: str
    page_count: int
    formats: list[BookFormat]


class BookUnpublished(EventData):
    type = "book.unpublished"
    producer = Producer.CONTENT
    subject_field = "book_id"
    book_id: uuid.UUID


class DeliveryIssued(EventData):
    type = "delivery.issued"
    producer = Producer.DELIVERY
    subject_field = "book_id"
    book_id: uuid.UUID
    user_id: uuid.UUID
    method: Literal["s3", "cloudfront", "cloudfront-cookies"]


class ReadingOpened(EventData):
    """A reader opened a book on a device while offline (#20): uploaded later, it is
    announced with the time it happened (the envelope's), so it counts in that hour."""

    type = "reading.opened"
    producer = Producer.DELIVERY
    subject_field = "book_id"
    book_id: uuid.UUID
    user_id: uuid.UUID


class ReadingProgressed(EventData):
    type = "reading.progressed"
    producer = Producer.DELIVERY
    subject_field = "book_id"
    book_id: uuid.UUID
    user_id: uuid.UUID
    page: int = Field(ge=0)
    total_pages: int = Field(gt=0)


class ReadingCompleted(EventData):
    type = "reading.completed"
    producer = Producer.DELIVERY
    subject_field = "book_id"
    book_id: uuid.UUID
    user_id: uuid.UUID


EVENT_CONTRACTS: dict[str, type[EventData]] = {
    contract.type: contract
    for contract in (
        UserRegistered,
        UserErased,
        UserExportRequested,
        UserLoggedIn,
        RoleAssigned,
        EntitlementGranted,
        EntitlementRevoked,
        ClassMemberJoined,
        ClassMemberLeft,
        ClassBookAssigned,
        ClassBookUnassigned,
        SubmissionCreated,
        SubmissionSubmitted,
        SubmissionReviewed,
        BookCreated,
        BookUpdated,
        BookPublished,
        BookProcessed,
        BookUnpublished,
        DeliveryIssued,
        ReadingOpened,
        ReadingProgressed,
        ReadingCompleted,
    )
}


# Versions older than the current that consumers still accept, so a rollout may
# run old producers beside new consumers (a consumer is always deployed first).
# Each handler of such a type takes either version; remove one here only once no
# queue or dead-letter queue can still hold it.
ACCEPTED_LEGACY_CONTRACTS: dict[tuple[str, str], type[EventData]] = {
    (contract.type, contract.version): contract
    for contract in (BookUpdatedV1, BookPublishedV1, SubmissionSubmittedV1, SubmissionSubmittedV2)
}


def event_types_of(producer: Producer) -> list[str]:
    return sorted(t for t, c in EVENT_CONTRACTS.items() if c.producer is producer)
