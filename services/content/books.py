"""Books: made from an approved submission by a book manager, published into the
catalog (the PDF copied under a new key) by a content admin."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from services.content.catalog import CatalogCache
from services.content.editing import (
    BOOK_MAKER,
    PUBLISHER,
    apply_changes,
    check_credited_accounts,
    check_if_match,
    check_lineage,
    families_for,
)
from services.content.families import Family
from services.content.models import Book, BookStatus, SubmissionStatus
from services.content.object_keys import (
    COVER_EXTENSIONS,
    cover_upload_key,
    filename_for,
    published_cover_key,
    published_key,
)
from services.content.repository import ContentRepository
from services.content.schemas import BookCreate, BookUpdate, CoverUploadRequest
from services.content.settings import ContentSettings
from services.content.storage import ManuscriptStorage, UploadForm
from shared.bus.outbox import record_event
from shared.clients.access_client import AccessClient
from shared.clients.db import UnitOfWorkSession, unit_of_work_session
from shared.contracts.clock import now_utc
from shared.contracts.decisions import Action
from shared.contracts.errors import (
    Conflict,
    ContentTooLarge,
    NotFound,
    Unprocessable,
    UnsupportedMediaType,
)
from shared.contracts.events import BookCreated, BookPublished, BookUnpublished, BookUpdated
from shared.contracts.roles import Role
from shared.http.auth import Principal


def lineage_of(book: Book) -> dict[str, Any]:
    """What book.* (version 2) tells consumers of where the book comes from."""
    return {
        "family_id": book.family_id,
        "derived_from": book.derived_from,
        "derivation": book.derivation,
        "reading_level": book.reading_level,
        "licence": book.licence,
    }


@dataclass
class BookService:
    repository: ContentRepository
    settings: ContentSettings
    storage: ManuscriptStorage
    access: AccessClient
    catalog: CatalogCache

    @property
    def session(self) -> UnitOfWorkSession:
        return unit_of_work_session(self.repository.session)

    async def create_book(self, actor: Principal, body: BookCreate) -> Book:
        await self.access.require(actor, Action.BOOK_CREATE, minimum=BOOK_MAKER)
        submission = await self.repository.submission(body.submission_id, for_update=True)
        if submission is None or submission.status == SubmissionStatus.DRAFT:
            raise NotFound("No such submission.")
        if submission.status != SubmissionStatus.APPROVED or submission.manuscript_key is None:
            raise Conflict(
                f"Only an approved submission becomes a book (this one is {submission.status}).",
                code="submission-not-approved",
            )
        if await self.repository.book_of_submission(submission.id) is not None:
            raise Conflict("This submission is already a book.", code="book-exists")
        metadata = {
            name: getattr(body, name)
            if getattr(body, name) is not None
            else getattr(submission, name)
            for name in (
                "title",
                "summary",
                "language",
                "age_min",
                "age_max",
                "category",
                "reading_level",
            )
        }
        if metadata["age_min"] > metadata["age_max"]:
            raise Unprocessable("age_min must not be above age_max.")
        if body.credits is not None:
            metadata["credits"] = [c.model_dump(mode="json") for c in body.credits]
        now = now_utc()
        book = Book(
            id=uuid.uuid4(),
            submission_id=submission.id,
            **({"credits": submission.credits} | metadata),
            family_id=submission.family_id,
            derived_from=submission.derived_from,
            derivation=submission.derivation,
            licence=submission.licence,
            access=body.access,
            status=BookStatus.DRAFT.value,
            version=1,
            source_key=submission.manuscript_key,
            source_filename=submission.manuscript_filename,
            source_sha256=submission.manuscript_sha256,
            source_version=submission.manuscript_version,
            estimated_level=(submission.analysis or {}).get("estimated_level"),
            edition=0,
            created_by=actor.user_id,
            created_at=now,
            updated_at=now,
        )
        await check_lineage(self.repository, book)
        await check_credited_accounts(self.repository, book)
        self.repository.add(book)
        record_event(
            self.session,
            BookCreated(
                book_id=book.id,
                submission_id=submission.id,
                title=book.title,
                language=book.language,
                access=body.access,
            ),
        )
        return book

    async def _managed_book(
        self, actor: Principal, book_id: uuid.UUID, action: Action, minimum: Role
    ) -> Book:
        await self.access.require(actor, action, minimum=minimum)
        book = await self.repository.book(book_id, for_update=True)
        if book is None:
            raise NotFound("No such book.")
        return book

    async def update_book(
        self, actor: Principal, book_id: uuid.UUID, if_match: str | None, changes: BookUpdate
    ) -> Book:
        book = await self._managed_book(actor, book_id, Action.BOOK_EDIT, BOOK_MAKER)
        check_if_match(if_match, book.version)
        slot = (book.language, book.reading_level)
        if not apply_changes(book, changes):
            return book
        await check_lineage(self.repository, book)
        await check_credited_accounts(self.repository, book)
        if book.status == BookStatus.PUBLISHED and (book.language, book.reading_level) != slot:
            await self._check_slot_free(book)
        book.version += 1
        book.updated_at = now_utc()
        record_event(
            self.session,
            BookUpdated(
                book_id=book.id,
                title=book.title,
                language=book.language,
                access=book.access,
                published=book.status == BookStatus.PUBLISHED,
                **lineage_of(book),
            ),
        )
        if book.status == BookStatus.PUBLISHED:
            self.session.after_commit(self.catalog.invalidate)
        return book

    async def cover_ticket(
        self, actor: Principal, book_id: uuid.UUID, request: CoverUploadRequest
    ) -> UploadForm:
        """A presigned POST for the book's cover; the next publication checks and takes it."""
        content_type = request.content_type.split(";")[0].strip().lower()
        if content_type not in COVER_EXTENSIONS:
            raise UnsupportedMediaType(
                "A cover is image/png, image/jpeg or image/webp.", code="unsupported-cover-type"
            )
        limit = self.settings.cover_max_bytes
        if request.size is not None and request.size > limit:
            raise ContentTooLarge(
                f"A cover may be at most {limit} bytes.", code="cover-too-large", max_bytes=limit
            )
        book = await self._managed_book(actor, book_id, Action.BOOK_EDIT, BOOK_MAKER)
        key = cover_upload_key(book.id, content_type)
        book.cover_upload_key = key
        return await self.storage.upload_form(
            key,
            content_type=content_type,
            max_bytes=limit,
            expires_in=self.settings.upload_link_seconds,
        )

    async def publish(self, actor: Principal, book_id: uuid.UUID, if_match: str | None) -> Book:
        """Copy the PDF to the published bucket under a new key; list the book in the catalog."""
        book = await self._managed_book(actor, book_id, Action.BOOK_PUBLISH, PUBLISHER)
        if if_match is not None:
            check_if_match(if_match, book.version)
        if book.status == BookStatus.PUBLISHED:
            raise Conflict("This book is already published.", code="illegal-transition")
        edition = book.edition + 1
        if book.cover_upload_key is not None:
            # Checked first: a bad cover stops the publication before any copy.
            cover = await self.storage.check_cover(
                book.cover_upload_key, max_bytes=self.settings.cover_max_bytes
            )
            cover_key = published_cover_key(book.id, edition, cover.content_type)
            await self.storage.publish_cover(
                cover.key,
                key=cover_key,
                content_type=cover.content_type,
                cache_seconds=self.settings.published_cache_seconds,
            )
            book.cover_key = cover_key
            book.cover_upload_key = None
        # The copy happens before the commit: if the commit fails, an orphan
        # object under an unguessable key is all that remains, and nothing
        # points to it. The reverse order could publish a book with no file.
        published = await self.storage.publish(
            book.source_key,
            key=published_key(book.id, edition),
            filename=book.source_filename or filename_for(book.title),
            cache_seconds=self.settings.published_cache_seconds,
            source_version=book.source_version,
            source_sha256=book.source_sha256,
        )
        now = now_utc()
        await self._retire_slot(book, now)
        book.edition = edition
        book.object_key = published.key
        book.object_version = published.version
        book.status = BookStatus.PUBLISHED.value
        book.superseded_by = None
        book.published_at = now
        book.updated_at = now
        book.version += 1
        record_event(
            self.session,
            BookPublished(
                book_id=book.id,
                object_key=published.key,
                object_version=published.version,
                access=book.access,
                language=book.language,
                **lineage_of(book),
            ),
        )
        await self._flush_publication()
        self.session.after_commit(self.catalog.invalidate)
        return book

    async def _retire_slot(self, book: Book, now: datetime) -> None:
        """One published book per family, language and level: the older leaves the catalog.

        It is unpublished (delivery issues no new link to it; the links already
        issued keep working until they expire) and points to its successor.
        """
        for older in await self.repository.published_in_slot(
            book.family_id, book.language, book.reading_level
        ):
            older.status = BookStatus.UNPUBLISHED.value
            older.superseded_by = book.id
            older.updated_at = now
            older.version += 1
            record_event(self.session, BookUnpublished(book_id=older.id))
        # Written before this book's row: the unique slot index must see the older leave first.
        await self.repository.session.flush()

    async def _check_slot_free(self, book: Book) -> None:
        with self.repository.session.no_autoflush:  # checked before the change is written
            in_slot = await self.repository.published_in_slot(
                book.family_id, book.language, book.reading_level
            )
        taken = [other for other in in_slot if other.id != book.id]
        if taken:
            raise Conflict(
                f"Book {taken[0].id} is this story's published {book.language} "
                f"{book.reading_level} version: unpublish it first.",
                code="version-slot-taken",
                book_id=str(taken[0].id),
            )

    async def _flush_publication(self) -> None:
        try:
            await self.repository.session.flush()
        except IntegrityError as error:
            # Two versions of one slot published at the same moment: the first won.
            raise Conflict(
                "Another version of this story in this language and level was published "
                "at the same moment; publish again to replace it.",
                code="version-slot-taken",
            ) from error

    async def family(self, book: Book) -> Family:
        return (await families_for(self.repository, [book]))[book.family_id]

    async def unpublish(self, actor: Principal, book_id: uuid.UUID, if_match: str | None) -> Book:
        book = await self._managed_book(actor, book_id, Action.BOOK_PUBLISH, PUBLISHER)
        if if_match is not None:
            check_if_match(if_match, book.version)
        if book.status != BookStatus.PUBLISHED:
            raise Conflict("Only a published book can be unpublished.", code="illegal-transition")
        book.status = BookStatus.UNPUBLISHED.value
        book.updated_at = now_utc()
        book.version += 1
        record_event(self.session, BookUnpublished(book_id=book.id))
        self.session.after_commit(self.catalog.invalidate)
        return book
