"""The rules of the content service: who may do what to a submission or a book, and when.

Every transition locks its row, checks (in this order) that the caller may see
the resource (else 404, so ids leak nothing), may act on it (403), still holds
its current version (`If-Match`: 428 if missing, 412 if stale) and that the
transition is legal from the current state (409). Then it records the step in
the history and its event in the outbox, in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.content.models import (
    Book,
    BookStatus,
    Submission,
    SubmissionStatus,
    SubmissionTransition,
)
from services.content.repository import CatalogQuery, ContentRepository
from services.content.schemas import (
    BookCreate,
    BookUpdate,
    CoverUploadRequest,
    MetadataChanges,
    ReviewRequest,
    SubmissionCreate,
    SubmissionUpdate,
    UploadRequest,
)
from services.content.settings import ContentSettings
from services.content.storage import (
    COVER_EXTENSIONS,
    PDF_CONTENT_TYPE,
    ManuscriptStorage,
    UploadForm,
    belongs_to,
    cover_upload_key,
    filename_for,
    published_cover_key,
    published_key,
    upload_key,
)
from shared.access_client import AccessClient
from shared.auth import Principal
from shared.clock import now_utc
from shared.db import UnitOfWorkSession, unit_of_work_session
from shared.decisions import Action
from shared.errors import (
    Conflict,
    ContentTooLarge,
    Forbidden,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    Unprocessable,
    UnsupportedMediaType,
)
from shared.events import (
    BookCreated,
    BookPublished,
    BookUnpublished,
    BookUpdated,
    SubmissionCreated,
    SubmissionReviewed,
    SubmissionSubmitted,
)
from shared.localcache import InvalidatedCache
from shared.outbox import record_event
from shared.pagination import decode_time_cursor, encode_cursor
from shared.roles import Role

WRITER = Role.VOLUNTEER
REVIEWER = Role.STORY_MANAGER
BOOK_MAKER = Role.BOOK_MANAGER
PUBLISHER = Role.CONTENT_ADMIN

EDITABLE = {SubmissionStatus.DRAFT, SubmissionStatus.CHANGES_REQUESTED}
AWAITING_REVIEW = [SubmissionStatus.SUBMITTED.value, SubmissionStatus.IN_REVIEW.value]
REVIEW_OUTCOME = {
    "approve": SubmissionStatus.APPROVED,
    "request_changes": SubmissionStatus.CHANGES_REQUESTED,
    "reject": SubmissionStatus.REJECTED,
}
# One cache of serialized public answers (catalog pages and single books).
CatalogCache = InvalidatedCache[tuple[Any, ...], tuple[str, bytes]]
CATALOG_CHANNEL = "content:catalog"


def etag(version: int) -> str:
    return f'"{version}"'


def check_if_match(if_match: str | None, version: int) -> None:
    """Optimistic concurrency: the caller must hold the current version."""
    if if_match is None:
        raise PreconditionRequired(
            "Send the version you read as If-Match (the ETag of the GET).", current_version=version
        )
    tags = [t.strip().removeprefix("W/").strip('"') for t in if_match.split(",")]
    if "*" not in tags and str(version) not in tags:
        raise PreconditionFailed(
            "Someone changed this since you read it: read it again, then retry.",
            code="version-mismatch",
            current_version=version,
        )


def apply_changes(row: Submission | Book, changes: MetadataChanges) -> bool:
    """Set the fields a PATCH sent (after checking them together); whether any were."""
    values = changes.model_dump(exclude_unset=True)
    if any(v is None for v in values.values()):
        raise Unprocessable("Fields may be changed but not emptied.")
    if values.get("age_min", row.age_min) > values.get("age_max", row.age_max):
        raise Unprocessable("age_min must not be above age_max.")
    for name, value in values.items():
        setattr(row, name, value)
    return bool(values)


@dataclass
class ContentService:
    repository: ContentRepository
    settings: ContentSettings
    storage: ManuscriptStorage
    access: AccessClient
    catalog: CatalogCache

    @property
    def session(self) -> UnitOfWorkSession:
        return unit_of_work_session(self.repository.session)

    # --- submissions -----------------------------------------------------------------

    @staticmethod
    def _require_writer_or_reviewer(actor: Principal) -> None:
        if actor.kind != "user" or not actor.role.at_least(WRITER):
            raise Forbidden("Submissions are for volunteers and reviewers only.")

    async def create_submission(self, actor: Principal, body: SubmissionCreate) -> Submission:
        await self.access.require(actor, Action.SUBMISSION_CREATE, minimum=WRITER)
        now = now_utc()
        submission = Submission(
            id=uuid.uuid4(),
            author_id=actor.user_id,
            **body.model_dump(),
            status=SubmissionStatus.DRAFT.value,
            version=1,
            created_at=now,
            updated_at=now,
        )
        self.repository.add(submission)
        self._record_transition(submission, None, actor, notes=None, at=now)
        record_event(
            self.session,
            SubmissionCreated(
                submission_id=submission.id,
                author_id=actor.user_id,
                language=submission.language,
                category=submission.category,
            ),
        )
        return submission

    async def visible_submission(
        self, actor: Principal, submission_id: uuid.UUID, *, for_update: bool = False
    ) -> Submission:
        """The submission if the caller may see it: its author, or a reviewer once submitted."""
        self._require_writer_or_reviewer(actor)
        submission = await self.repository.submission(submission_id, for_update=for_update)
        if submission is None or not await self._can_see(actor, submission):
            raise NotFound("No such submission.")
        return submission

    async def _can_see(self, actor: Principal, submission: Submission) -> bool:
        if submission.author_id == actor.user_id:
            return True
        # A draft is its author's alone, even for reviewers.
        if submission.status == SubmissionStatus.DRAFT:
            return False
        return await holds_now(self.access, actor, Action.SUBMISSION_REVIEW, REVIEWER)

    async def _own_submission(
        self, actor: Principal, submission_id: uuid.UUID, *, for_update: bool = True
    ) -> Submission:
        submission = await self.visible_submission(actor, submission_id, for_update=for_update)
        if submission.author_id != actor.user_id:
            raise Forbidden("Only the author may change a submission.")
        return submission

    async def list_submissions(
        self,
        actor: Principal,
        *,
        mine: bool,
        status: SubmissionStatus | None,
        language: str | None,
        age: int | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Submission], str | None]:
        self._require_writer_or_reviewer(actor)
        if not mine and actor.role.at_least(REVIEWER):
            # The queue is for reviewers now, not for whoever was one at sign-in.
            await self.access.require(actor, Action.SUBMISSION_REVIEW, minimum=REVIEWER)
        if mine or not actor.role.at_least(REVIEWER):
            after = decode_time_cursor(cursor)
            rows = await self.repository.own_submissions(
                actor.user_id,
                status=status.value if status else None,
                after=after,
                limit=limit + 1,
            )
            return _page(rows, limit, lambda s: (s.created_at.isoformat(), s.id))
        if status is SubmissionStatus.DRAFT:
            raise Forbidden("Drafts are seen only by their authors (use mine=true).")
        rows = await self.repository.review_queue(
            statuses=[status.value] if status else AWAITING_REVIEW,
            language=language,
            age=age,
            after=decode_time_cursor(cursor),
            limit=limit + 1,
        )
        return _page(rows, limit, lambda s: (_iso(s.submitted_at), s.id))

    async def update_submission(
        self,
        actor: Principal,
        submission_id: uuid.UUID,
        if_match: str | None,
        changes: SubmissionUpdate,
    ) -> Submission:
        submission = await self._own_submission(actor, submission_id)
        check_if_match(if_match, submission.version)
        if SubmissionStatus(submission.status) not in EDITABLE:
            raise Conflict(
                f"A {submission.status} submission cannot be edited.", code="not-editable"
            )
        if apply_changes(submission, changes):
            submission.version += 1
            submission.updated_at = now_utc()
        return submission

    async def upload_ticket(
        self, actor: Principal, submission_id: uuid.UUID, request: UploadRequest
    ) -> UploadForm:
        if request.content_type.split(";")[0].strip().lower() != PDF_CONTENT_TYPE:
            raise UnsupportedMediaType(
                f"Manuscripts are PDFs: content_type must be {PDF_CONTENT_TYPE}.",
                code="unsupported-manuscript-type",
            )
        limit = self.settings.manuscript_max_bytes
        if request.size is not None and request.size > limit:
            raise ContentTooLarge(
                f"A manuscript may be at most {limit} bytes.",
                code="manuscript-too-large",
                max_bytes=limit,
            )
        submission = await self._own_submission(actor, submission_id)
        if SubmissionStatus(submission.status) not in EDITABLE:
            raise Conflict(
                f"A {submission.status} submission takes no new manuscript.", code="not-editable"
            )
        key = upload_key(submission.id)
        submission.upload_key = key
        submission.upload_filename = request.filename or filename_for(submission.title)
        return await self.storage.upload_form(
            key,
            content_type=PDF_CONTENT_TYPE,
            max_bytes=limit,
            expires_in=self.settings.upload_link_seconds,
        )

    async def submit(
        self, actor: Principal, submission_id: uuid.UUID, if_match: str | None
    ) -> Submission:
        submission = await self._own_submission(actor, submission_id)
        check_if_match(if_match, submission.version)
        if SubmissionStatus(submission.status) not in EDITABLE:
            raise Conflict(
                f"A {submission.status} submission cannot be submitted.", code="illegal-transition"
            )
        if submission.upload_key is not None:
            if not belongs_to(submission.upload_key, submission.id):
                raise Unprocessable("The upload does not belong to this submission.")
            checked = await self.storage.check_manuscript(
                submission.upload_key, max_bytes=self.settings.manuscript_max_bytes
            )
            # From here on, review and publication read only this pinned copy.
            submission.manuscript_key = checked.key
            submission.manuscript_size = checked.size
            submission.manuscript_filename = submission.upload_filename
            submission.upload_key = None
            submission.upload_filename = None
        elif submission.manuscript_key is None:
            raise Unprocessable(
                "No manuscript has been uploaded: ask for an upload ticket, "
                "POST the PDF to it, then submit.",
                code="manuscript-missing",
            )
        now = now_utc()
        self._move(submission, SubmissionStatus.SUBMITTED, actor, notes=None, at=now)
        submission.submitted_at = now
        submission.reviewer_id = None
        record_event(
            self.session,
            SubmissionSubmitted(submission_id=submission.id, author_id=submission.author_id),
        )
        return submission

    async def _reviewable(
        self, actor: Principal, submission_id: uuid.UUID, if_match: str | None
    ) -> Submission:
        self._require_writer_or_reviewer(actor)
        await self.access.require(actor, Action.SUBMISSION_REVIEW, minimum=REVIEWER)
        submission = await self.visible_submission(actor, submission_id, for_update=True)
        if submission.author_id == actor.user_id:
            raise Forbidden("Nobody reviews their own submission.", code="own-submission")
        check_if_match(if_match, submission.version)
        return submission

    async def claim(
        self, actor: Principal, submission_id: uuid.UUID, if_match: str | None
    ) -> Submission:
        submission = await self._reviewable(actor, submission_id, if_match)
        if submission.status != SubmissionStatus.SUBMITTED:
            raise Conflict(
                f"Only a SUBMITTED submission can be taken into review, not {submission.status}.",
                code="illegal-transition",
            )
        self._move(submission, SubmissionStatus.IN_REVIEW, actor, notes=None, at=now_utc())
        submission.reviewer_id = actor.user_id
        return submission

    async def review(
        self,
        actor: Principal,
        submission_id: uuid.UUID,
        if_match: str | None,
        request: ReviewRequest,
    ) -> Submission:
        submission = await self._reviewable(actor, submission_id, if_match)
        if submission.status not in AWAITING_REVIEW:
            raise Conflict(
                f"A {submission.status} submission cannot be reviewed.", code="illegal-transition"
            )
        if request.decision != "approve" and not request.notes:
            raise Unprocessable("Say what is wrong: notes are required unless approving.")
        now = now_utc()
        self._move(submission, REVIEW_OUTCOME[request.decision], actor, notes=request.notes, at=now)
        submission.reviewer_id = actor.user_id
        submission.decided_at = now
        submitted_at = submission.submitted_at or now
        record_event(
            self.session,
            SubmissionReviewed(
                submission_id=submission.id,
                reviewer_id=actor.user_id,
                decision=request.decision,
                seconds_since_submitted=max(0.0, (now - submitted_at).total_seconds()),
            ),
        )
        return submission

    async def history(
        self, actor: Principal, submission_id: uuid.UUID
    ) -> list[SubmissionTransition]:
        await self.visible_submission(actor, submission_id)
        return await self.repository.history(submission_id)

    async def manuscript_link(
        self, actor: Principal, submission_id: uuid.UUID
    ) -> tuple[str, datetime]:
        submission = await self.visible_submission(actor, submission_id)
        if submission.manuscript_key is None:
            raise NotFound("This submission has no verified manuscript yet.", code="no-manuscript")
        ttl = self.settings.manuscript_link_seconds
        url = await self.storage.download_link(
            submission.manuscript_key,
            filename=submission.manuscript_filename or filename_for(submission.title),
            expires_in=ttl,
        )
        return url, now_utc() + timedelta(seconds=ttl)

    def _move(
        self,
        submission: Submission,
        to: SubmissionStatus,
        actor: Principal,
        *,
        notes: str | None,
        at: datetime,
    ) -> None:
        previous = submission.status
        submission.status = to.value
        submission.version += 1
        submission.updated_at = at
        self._record_transition(submission, previous, actor, notes=notes, at=at)

    def _record_transition(
        self,
        submission: Submission,
        previous: str | None,
        actor: Principal,
        *,
        notes: str | None,
        at: datetime,
    ) -> None:
        self.repository.add(
            SubmissionTransition(
                id=uuid.uuid4(),
                submission_id=submission.id,
                from_status=previous,
                to_status=submission.status,
                actor_id=actor.user_id,
                actor_role=actor.role.value,
                notes=notes,
                at=at,
            )
        )

    # --- books -----------------------------------------------------------------------

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
        now = now_utc()
        book = Book(
            id=uuid.uuid4(),
            submission_id=submission.id,
            **metadata,
            access=body.access,
            status=BookStatus.DRAFT.value,
            version=1,
            source_key=submission.manuscript_key,
            source_filename=submission.manuscript_filename,
            edition=0,
            created_by=actor.user_id,
            created_at=now,
            updated_at=now,
        )
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
        if not apply_changes(book, changes):
            return book
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
        )
        now = now_utc()
        book.edition = edition
        book.object_key = published.key
        book.object_version = published.version
        book.status = BookStatus.PUBLISHED.value
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
            ),
        )
        self.session.after_commit(self.catalog.invalidate)
        return book

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

    # --- the catalog -----------------------------------------------------------------

    async def catalog_page(self, query: CatalogQuery) -> tuple[list[Book], str | None]:
        rows = await self.repository.catalog(query)
        order = "published_at" if query.status == BookStatus.PUBLISHED else "updated_at"
        return _page(rows, query.limit, lambda b: (_iso(getattr(b, order)), b.id))

    async def book_for(self, viewer: Principal | None, book_id: uuid.UUID) -> Book:
        book = await self.repository.book(book_id)
        if book is None or (
            book.status != BookStatus.PUBLISHED and not await sees_every_book(self.access, viewer)
        ):
            raise NotFound("No such book.")
        return book


async def holds_now(
    access: AccessClient, actor: Principal | None, action: Action, minimum: Role
) -> bool:
    """Whether the caller may `action` *now*, for reads only staff may do.

    The token's role is the one it was signed with, up to its lifetime ago; a
    demotion must end a manager's reads at once, as it ends their writes. A token
    too weak on its face costs nothing; one strong enough is confirmed with access
    (a cached decision, emptied on every role change).
    """
    if actor is None or actor.kind != "user" or not actor.role.at_least(minimum):
        return False
    return (await access.decide(actor.user_id, action)).allow


async def sees_every_book(access: AccessClient, viewer: Principal | None) -> bool:
    """Book managers see drafts and unpublished books: checked now, not at sign-in."""
    return await holds_now(access, viewer, Action.BOOK_EDIT, BOOK_MAKER)


def _iso(moment: datetime | None) -> str:
    assert moment is not None
    return moment.isoformat()


def parse_catalog_cursor(cursor: str | None) -> tuple[str, str] | None:
    parsed = decode_time_cursor(cursor)
    return (parsed[0].isoformat(), str(parsed[1])) if parsed else None


def _page(rows: list[Any], limit: int, key: Any) -> tuple[list[Any], str | None]:
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(*key(rows[-1]))
