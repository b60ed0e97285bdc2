"""A submission as its volunteer writes it: created or derived, edited, its
manuscript uploaded, checked and pinned, submitted; every step in its history.
Its review is reviews.py; the order of checks is in editing.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.content import duplicates
from services.content.editing import (
    REVIEWER,
    WRITER,
    apply_changes,
    check_credited_accounts,
    check_if_match,
    check_lineage,
    holds_now,
    if_match_holds,
    iso,
    page_of,
)
from services.content.families import (
    CreditRole,
    Derivation,
    check_derivable,
    check_derivation,
    derived_credits,
)
from services.content.manuscript_analysis import flags, hold_note, levelled, severe_findings
from services.content.models import BookStatus, Submission, SubmissionStatus, SubmissionTransition
from services.content.object_keys import PDF_CONTENT_TYPE, belongs_to, filename_for, upload_key
from services.content.repository import ContentRepository
from services.content.schemas import (
    DerivationRequest,
    SubmissionCreate,
    SubmissionUpdate,
    UploadRequest,
)
from services.content.settings import ContentSettings
from services.content.storage import ManuscriptRefused, ManuscriptStorage, UploadForm
from shared.bus.outbox import record_event
from shared.clients.access_client import AccessClient
from shared.clients.db import UnitOfWorkSession, unit_of_work_session
from shared.contracts.clock import now_utc
from shared.contracts.decisions import Action
from shared.contracts.errors import (
    Conflict,
    ContentTooLarge,
    Forbidden,
    NotFound,
    Unprocessable,
    UnsupportedMediaType,
)
from shared.contracts.events import SubmissionCreated, SubmissionSubmitted
from shared.http.auth import Principal
from shared.http.pagination import decode_flagged_time_cursor, decode_time_cursor

EDITABLE = {SubmissionStatus.DRAFT, SubmissionStatus.CHANGES_REQUESTED}
AWAITING_REVIEW = [SubmissionStatus.SUBMITTED.value, SubmissionStatus.IN_REVIEW.value]


@dataclass(frozen=True)
class CheckedManuscript:
    """An upload that passed the deep check: its checked copy, by key, digest and version."""

    upload_key: str
    key: str
    size: int
    sha256: str
    version: str
    analysis: dict[str, Any] | None = None


@dataclass
class SubmissionService:
    repository: ContentRepository
    settings: ContentSettings
    storage: ManuscriptStorage
    access: AccessClient

    @property
    def session(self) -> UnitOfWorkSession:
        return unit_of_work_session(self.repository.session)

    @staticmethod
    def require_writer_or_reviewer(actor: Principal) -> None:
        if actor.kind != "user" or not actor.role.at_least(WRITER):
            raise Forbidden("Submissions are for volunteers and reviewers only.")

    async def create_submission(self, actor: Principal, body: SubmissionCreate) -> Submission:
        await self.access.require(actor, Action.SUBMISSION_CREATE, minimum=WRITER)
        submission_id = uuid.uuid4()
        # An original starts its own family, named after its first submission.
        submission = Submission(
            id=submission_id,
            author_id=actor.user_id,
            **body.model_dump(mode="json"),
            family_id=submission_id,
            derived_from=None,
            derivation=Derivation.ORIGINAL.value,
        )
        await check_credited_accounts(self.repository, submission, author_id=actor.user_id)
        return self._start(actor, submission)

    async def start_derivation(
        self, actor: Principal, book_id: uuid.UUID, body: DerivationRequest
    ) -> Submission:
        """A translation or adaptation of a published book: a new submission of its family.

        Its metadata starts as the source's (the title and summary to translate),
        its credits carry the source's over and add the one who starts it; its
        family, source and licence are pinned here.
        """
        await self.access.require(actor, Action.SUBMISSION_CREATE, minimum=WRITER)
        source = await self.repository.book(book_id)
        if source is None or source.status != BookStatus.PUBLISHED:
            raise NotFound("No such published book.")
        check_derivable(source)
        kind = Derivation(body.kind)
        language = body.language or source.language
        reading_level = body.reading_level or source.reading_level
        check_derivation(kind, source, language=language, reading_level=reading_level)
        role = CreditRole.TRANSLATOR if kind is Derivation.TRANSLATION else CreditRole.ADAPTER
        name = body.credited_as or f"a volunteer {role.value}"
        return self._start(
            actor,
            Submission(
                id=uuid.uuid4(),
                author_id=actor.user_id,
                title=source.title,
                summary=source.summary,
                language=language,
                age_min=source.age_min,
                age_max=source.age_max,
                category=source.category,
                reading_level=reading_level,
                family_id=source.family_id,
                derived_from=source.id,
                derivation=kind.value,
                credits=derived_credits(source, role, name, actor.user_id),
                licence=source.licence,
            ),
        )

    def _start(self, actor: Principal, submission: Submission) -> Submission:
        now = now_utc()
        submission.status = SubmissionStatus.DRAFT.value
        submission.version = 1
        submission.held = submission.flagged = False
        submission.created_at = now
        submission.updated_at = now
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
        self.require_writer_or_reviewer(actor)
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
        every_language: bool,
        age: int | None,
        cursor: str | None,
        limit: int,
        flagged: bool | None = None,  # the queue's: only flagged work, or only the rest
    ) -> tuple[list[Submission], str | None]:
        self.require_writer_or_reviewer(actor)
        reviewed: tuple[str, ...] | None = None
        if not mine and actor.role.at_least(REVIEWER):
            # The queue is for reviewers now, not for whoever was one at sign-in;
            # the decision also names the languages they review now.
            decision = await self.access.require(actor, Action.SUBMISSION_REVIEW, minimum=REVIEWER)
            reviewed = None if every_language or language else decision.languages
        if mine or not actor.role.at_least(REVIEWER):
            after = decode_time_cursor(cursor)
            rows = await self.repository.own_submissions(
                actor.user_id,
                status=status.value if status else None,
                after=after,
                limit=limit + 1,
            )
            return page_of(rows, limit, lambda s: (s.created_at.isoformat(), s.id))
        if status is SubmissionStatus.DRAFT:
            raise Forbidden("Drafts are seen only by their authors (use mine=true).")
        rows = await self.repository.review_queue(
            statuses=[status.value] if status else AWAITING_REVIEW,
            language=language,
            languages=reviewed,
            age=age,
            flagged=flagged,
            after=decode_flagged_time_cursor(cursor),
            limit=limit + 1,
        )
        return page_of(rows, limit, lambda s: (s.flagged, iso(s.submitted_at), s.id))

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
        derived = submission.derivation != Derivation.ORIGINAL
        if derived and changes.licence not in (None, submission.licence):
            raise Unprocessable(
                "A translation or adaptation keeps its source's licence.", code="derived-licence"
            )
        if apply_changes(submission, changes):
            await check_lineage(self.repository, submission)
            await check_credited_accounts(
                self.repository, submission, author_id=submission.author_id
            )
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

    async def check_upload(
        self, actor: Principal, submission_id: uuid.UUID, if_match: str | None
    ) -> CheckedManuscript | None:
        """Submit's first half: the deep check of the uploaded manuscript, outside any
        transaction of the request's.

        The check takes seconds. Inside the request's transaction it held the
        submission's row lock on PostgreSQL and, on SQLite (which takes its write
        lock when a transaction begins), every writer of the service: a refusal's
        own transaction then waited 30 s for its request and failed. So the read
        that finds the upload ends before the check, and `submit` (the second half,
        in the request's transaction) pins the result only if the submission is
        still as it was. None where there is nothing to check: `submit` answers.
        """
        submission = await self._own_submission(actor, submission_id, for_update=False)
        upload_key, status = submission.upload_key, submission.status
        language = submission.language
        current = if_match is not None and if_match_holds(if_match, submission.version)
        # A read ends here; nothing was written (rollback also forgets what was read,
        # so `submit` reads the submission afresh, under its lock).
        await self.session.rollback()
        if (
            upload_key is None
            or SubmissionStatus(status) not in EDITABLE
            or not current
            or not belongs_to(upload_key, submission_id)
        ):
            return None
        # A place among this process's checks first (503 when none is left): each
        # copies, reads and parses up to a manuscript's size and a child's memory.
        async with self.storage.checks.place():
            checked = await self.storage.check_manuscript(
                upload_key, max_bytes=self.settings.manuscript_max_bytes
            )
            try:
                inspected = await self.storage.inspect_manuscript(
                    checked.key, self.settings.pdf_check_limits(), language
                )
            except ManuscriptRefused as refused:
                await self._record_refusal(submission_id, status, actor, refused)
                raise
        return CheckedManuscript(
            upload_key=upload_key,
            key=checked.key,
            size=checked.size,
            sha256=inspected.sha256,
            version=inspected.version,
            analysis=levelled(inspected.analysis, await self.repository.fitted_thresholds()),
        )

    async def submit(
        self,
        actor: Principal,
        submission_id: uuid.UUID,
        if_match: str | None,
        checked: CheckedManuscript | None,
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
            if checked is None or checked.upload_key != submission.upload_key:
                # A new upload ticket was asked for while the last upload was checked.
                raise Conflict(
                    "The upload changed while it was being checked; submit again.",
                    code="upload-changed",
                )
            # From here on, review and publication read only this pinned copy:
            # that version, those bytes.
            submission.manuscript_key = checked.key
            submission.manuscript_size = checked.size
            submission.manuscript_sha256 = checked.sha256
            submission.manuscript_version = checked.version
            submission.manuscript_filename = submission.upload_filename
            # Read from those bytes, and compared with the library's (duplicates.py).
            submission.analysis = await duplicates.checked(
                self.repository, submission, checked.analysis
            )
            submission.upload_key = None
            submission.upload_filename = None
        elif submission.manuscript_key is None:
            raise Unprocessable(
                "No manuscript has been uploaded: ask for an upload ticket, "
                "POST the PDF to it, then submit.",
                code="manuscript-missing",
            )
        severe = severe_findings(submission.analysis)
        submission.flagged = bool(flagged := flags(submission.analysis, submission))
        # Cleared once for these bytes, cleared for good; new bytes are read afresh.
        submission.held = bool(severe) and (
            submission.hold_cleared_sha256 is None
            or submission.hold_cleared_sha256 != submission.manuscript_sha256
        )
        now = now_utc()
        notes = hold_note(severe) if submission.held else None
        self.move(submission, SubmissionStatus.SUBMITTED, actor, notes=notes, at=now)
        submission.submitted_at = now
        submission.reviewer_id = None
        record_event(
            self.session,
            SubmissionSubmitted(
                submission_id=submission.id,
                author_id=submission.author_id,
                language=submission.language,
                family_id=submission.family_id,
                flags=flagged[:20],
                held=submission.held,
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
            version=submission.manuscript_version,
        )
        return url, now_utc() + timedelta(seconds=ttl)

    async def _record_refusal(
        self, submission_id: uuid.UUID, status: str, actor: Principal, refused: ManuscriptRefused
    ) -> None:
        """The refusal goes into the history in a transaction of its own (the request's
        rolls back with the 422; the author must see why; see `check_upload`)."""
        async with AsyncSession(bind=self.repository.session.bind) as own:
            own.add(
                SubmissionTransition(
                    id=uuid.uuid4(),
                    submission_id=submission_id,
                    from_status=status,
                    to_status=status,
                    actor_id=actor.user_id,
                    actor_role=actor.role.value,
                    notes=f"Manuscript refused ({refused.code}): {refused.detail}",
                    at=now_utc(),
                )
            )
            await own.commit()

    def move(
        self, submission: Submission, to: SubmissionStatus, actor: Principal, *, notes: str | None,
        at: datetime,
    ) -> None:  # fmt: skip
        previous = submission.status
        submission.status = to.value
        submission.version += 1
        submission.updated_at = at
        self._record_transition(submission, previous, actor, notes=notes, at=at)

    def _record_transition(
        self, submission: Submission, previous: str | None, actor: Principal, *,
        notes: str | None, at: datetime,
    ) -> None:  # fmt: skip
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
