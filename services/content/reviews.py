"""The review of a submission: a story manager of its language claims it, and only
the one who claimed it decides it (approve, request changes, reject). The steps go
into the submission's history through submissions.py, which owns the row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from services.content.editing import PUBLISHER, REVIEWER, check_if_match
from services.content.models import Submission, SubmissionStatus
from services.content.schemas import ReviewRequest
from services.content.settings import ContentSettings
from services.content.submissions import SubmissionService
from shared.bus.outbox import record_event
from shared.contracts.clock import now_utc
from shared.contracts.decisions import Action
from shared.contracts.errors import Conflict, Forbidden, Unprocessable
from shared.contracts.events import SubmissionReviewed
from shared.http.auth import Principal

REVIEW_OUTCOME = {
    "approve": SubmissionStatus.APPROVED,
    "request_changes": SubmissionStatus.CHANGES_REQUESTED,
    "reject": SubmissionStatus.REJECTED,
}


def reviews_language(languages: tuple[str, ...] | None, language: str) -> bool:
    """Whether a reviewer of `languages` (none declared: every one) reviews `language`.

    A reviewer of "sw" reviews "sw-KE" too; one of "pt-BR" reviews "pt-BR" only.
    """
    if not languages:
        return True
    tag = language.lower()
    return any(tag == own or tag.startswith(f"{own}-") for own in languages)


def confirm_level(
    submission: Submission, level: str, actor: Principal, at: datetime, notes: str | None
) -> str:
    """The reviewer's level, kept with who and when; a correction becomes the
    submission's level (and so its book's). Returns the history's note."""
    declared = submission.reading_level
    submission.confirmed_level = level
    submission.level_confirmed_by = actor.user_id
    submission.level_confirmed_at = at
    submission.reading_level = level
    said = (
        f"Reading level confirmed: {level}."
        if level == declared
        else f"Reading level corrected from {declared} to {level}."
    )
    return f"{said} {notes}" if notes else said


@dataclass
class ReviewService:
    submissions: SubmissionService

    @property
    def settings(self) -> ContentSettings:
        return self.submissions.settings

    async def _reviewable(
        self, actor: Principal, submission_id: uuid.UUID, if_match: str | None
    ) -> Submission:
        self.submissions.require_writer_or_reviewer(actor)
        decision = await self.submissions.access.require(
            actor, Action.SUBMISSION_REVIEW, minimum=REVIEWER
        )
        submission = await self.submissions.visible_submission(
            actor, submission_id, for_update=True
        )
        if submission.author_id == actor.user_id:
            raise Forbidden("Nobody reviews their own submission.", code="own-submission")
        if not reviews_language(decision.languages, submission.language):
            raise Forbidden(
                f"You review {', '.join(decision.languages or ())}; this submission is in "
                f"{submission.language}.",
                code="not-your-language",
            )
        check_if_match(if_match, submission.version)
        return submission

    async def claim(
        self,
        actor: Principal,
        submission_id: uuid.UUID,
        if_match: str | None,
        *,
        take_over: bool = False,
    ) -> Submission:
        """Take a submission into review: it is then this reviewer's to decide (#37
        F16: a claim reserved nothing). Another reviewer's claim is taken over only
        when asked, and the history names whose it was."""
        submission = await self._reviewable(actor, submission_id, if_match)
        now = now_utc()
        if submission.status == SubmissionStatus.IN_REVIEW:
            if submission.reviewer_id == actor.user_id:
                return submission  # claimed already: nothing changes
            if not take_over:
                raise Conflict(
                    "Another reviewer has this submission in review; send take_over to "
                    "take it over.",
                    code="claimed-by-another",
                    reviewer_id=str(submission.reviewer_id),
                )
            previous = submission.reviewer_id
            self.submissions.move(
                submission,
                SubmissionStatus.IN_REVIEW,
                actor,
                notes=f"Taken over from reviewer {previous}.",
                at=now,
            )
            submission.reviewer_id = actor.user_id
            return submission
        if submission.status != SubmissionStatus.SUBMITTED:
            raise Conflict(
                f"Only a SUBMITTED submission can be taken into review, not {submission.status}.",
                code="illegal-transition",
            )
        self.submissions.move(submission, SubmissionStatus.IN_REVIEW, actor, notes=None, at=now)
        submission.reviewer_id = actor.user_id
        return submission

    async def clear_hold(
        self, actor: Principal, submission_id: uuid.UUID, if_match: str | None, reason: str
    ) -> Submission:
        """A CONTENT_ADMIN lets a held submission go on, saying why: for the bytes
        that were read (their SHA-256), recorded in the history with who and when."""
        await self.submissions.access.require(actor, Action.SUBMISSION_REVIEW, minimum=PUBLISHER)
        submission = await self.submissions.visible_submission(
            actor, submission_id, for_update=True
        )
        check_if_match(if_match, submission.version)
        if not submission.held:
            raise Conflict("This submission is not held.", code="not-held")
        submission.held = False
        submission.hold_cleared_sha256 = submission.manuscript_sha256
        self.submissions.move(
            submission,
            SubmissionStatus(submission.status),
            actor,
            notes=f"Hold cleared: {reason}",
            at=now_utc(),
        )
        return submission

    async def review(
        self,
        actor: Principal,
        submission_id: uuid.UUID,
        if_match: str | None,
        request: ReviewRequest,
    ) -> Submission:
        submission = await self._reviewable(actor, submission_id, if_match)
        if submission.status == SubmissionStatus.SUBMITTED:
            raise Conflict(
                "Claim the submission first (POST …/claim): a decision is its reviewer's.",
                code="not-claimed",
            )
        if submission.status != SubmissionStatus.IN_REVIEW:
            raise Conflict(
                f"A {submission.status} submission cannot be reviewed.", code="illegal-transition"
            )
        if submission.reviewer_id != actor.user_id:
            raise Conflict(
                "Another reviewer has this submission in review: take it over first "
                "(POST …/claim with take_over) to decide it.",
                code="claimed-by-another",
                reviewer_id=str(submission.reviewer_id),
            )
        if request.decision != "approve" and not request.notes:
            raise Unprocessable("Say what is wrong: notes are required unless approving.")
        if request.decision == "approve" and submission.held:
            # Changes or a rejection still go back to the author; an approval waits.
            raise Conflict(
                "A severe finding holds this submission: a CONTENT_ADMIN must clear it "
                "(POST …/clearance) before it can be approved.",
                code="held-for-clearance",
            )
        if request.reading_level is not None and request.decision != "approve":
            raise Unprocessable(
                "A reading level is confirmed at approval: send it with decision approve."
            )
        now = now_utc()
        notes = request.notes
        if request.reading_level is not None:
            notes = confirm_level(submission, request.reading_level, actor, now, notes)
        self.submissions.move(
            submission, REVIEW_OUTCOME[request.decision], actor, notes=notes, at=now
        )
        submission.decided_at = now
        submitted_at = submission.submitted_at or now
        record_event(
            self.submissions.session,
            SubmissionReviewed(
                submission_id=submission.id,
                reviewer_id=actor.user_id,
                decision=request.decision,
                seconds_since_submitted=max(0.0, (now - submitted_at).total_seconds()),
            ),
        )
        return submission
