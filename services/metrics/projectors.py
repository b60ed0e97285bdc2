"""How each event moves the figures: one projector per event type, in a table
(`PROJECTORS`), and the figures one batch of events gathers before it commits.

Every event lands in the hour it happened (its CloudEvents `time`), not the
hour it arrived, so late and out-of-order events count where they belong.
Counters of a batch are added up in process and written in one statement just
before the batch commits; distinct readers go to PostgreSQL exactly and to
Redis as HyperLogLogs (one per hour) once the batch has committed.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.metrics import reading_repository, repository, xapi
from services.metrics.sketches import ReaderSketches
from services.metrics.terms import REVIEW_STATUS, Metric, book_dimension
from shared.bus.consumer import EventContext
from shared.clients.db import unit_of_work
from shared.contracts.clock import hour_of, now_utc
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    BookCreated,
    BookLineage,
    BookProcessed,
    BookPublished,
    BookPublishedV1,
    BookUnpublished,
    BookUpdated,
    BookUpdatedV1,
    ClassBookAssigned,
    ClassBookUnassigned,
    ClassMemberJoined,
    ClassMemberLeft,
    DeliveryIssued,
    EntitlementGranted,
    EntitlementRevoked,
    EventData,
    ReadingCompleted,
    ReadingOpened,
    ReadingProgressed,
    RoleAssigned,
    SubmissionCreated,
    SubmissionReviewed,
    SubmissionSubmitted,
    SubmissionSubmittedV1,
    SubmissionSubmittedV2,
    UserErased,
    UserExportRequested,
    UserLoggedIn,
    UserRegistered,
)

if TYPE_CHECKING:
    pass

from collections.abc import Awaitable, Callable

log = structlog.get_logger(__name__)


@dataclass
class BatchFigures:
    """What one batch of events adds, gathered so it is written once per batch."""

    counts: Counter[repository.CountKey] = field(default_factory=Counter)
    # (hour, reader, book) -> opens in this batch
    readers: Counter[tuple[datetime, uuid.UUID, uuid.UUID]] = field(default_factory=Counter)
    reading: dict[reading_repository.ReadingKey, reading_repository.ReadingStep] = field(
        default_factory=dict
    )
    logged: list[dict[str, Any]] = field(default_factory=list)
    # Whether the logged events' xAPI statements go to an LRS (one is configured).
    statements: bool = False

    @classmethod
    def of(cls, context: EventContext) -> BatchFigures:
        figures = context.batch.scratch.get("metrics")
        if figures is None:
            settings = context.resources.settings
            figures = context.batch.scratch["metrics"] = cls(
                statements=getattr(settings, "xapi_lrs_url", None) is not None
            )
            session, sketches = context.session, ReaderSketches.of(context.resources)

            async def write() -> None:
                await figures.write(session)

            async def sketch() -> None:
                hours = {hour for hour, _, _ in figures.readers}
                if not hours:
                    return
                try:
                    await sketches.add(figures.readers)
                    async with unit_of_work(context.resources.session_factory) as confirm:
                        await repository.sketches_written(confirm, dict.fromkeys(hours, 1))
                except Exception:
                    # The hours stay pending: counted in PostgreSQL until the
                    # worker reseals them from reader_hours.
                    log.warning("reader sketches not updated", readers=len(figures.readers))

            context.before_commit(write)
            context.after_commit(sketch)
        return figures

    def count(self, metric: Metric, at: datetime, *dimensions: str) -> None:
        hour = hour_of(at)
        for dimension in ("", *dimensions):
            self.counts[(metric.value, dimension, hour)] += 1

    def read(self, user_id: uuid.UUID, book_id: uuid.UUID, *, at: datetime, **step: Any) -> None:
        self.reading.setdefault((user_id, book_id), reading_repository.ReadingStep()).merge(
            at=at, **step
        )

    def log(self, envelope: Envelope) -> None:
        self.logged.append(repository.event_log_row(envelope, now_utc()))

    async def write(self, session: AsyncSession) -> None:
        await repository.add_to_event_log(session, self.logged)
        if self.statements:
            await xapi.add_to_outbox(session, xapi.outbox_rows(self.logged))
        await repository.add_counts(session, dict(self.counts))
        await repository.add_reader_hours(session, self.readers)
        await repository.mark_sketches_pending(session, (hour for hour, _, _ in self.readers))
        await reading_repository.advance_reading(session, self.reading)


@dataclass(frozen=True)
class Step:
    """One event as its projector sees it: where to write, when it happened, and
    the batch's figures."""

    session: AsyncSession
    at: datetime
    event_id: uuid.UUID
    figures: BatchFigures


async def _registered(step: Step, data: UserRegistered) -> None:
    step.figures.count(Metric.REGISTRATIONS, step.at, f"role:{data.role.value}")
    await repository.set_role(step.session, data.user_id, data.role.value, step.at, registered=True)


async def _logged_in(step: Step, data: UserLoggedIn) -> None:
    step.figures.count(Metric.LOGINS, step.at, f"role:{data.role.value}")


async def _role_assigned(step: Step, data: RoleAssigned) -> None:
    step.figures.count(Metric.ROLE_ASSIGNMENTS, step.at, f"role:{data.role.value}")
    await repository.set_role(
        step.session, data.user_id, data.role.value, step.at, registered=False
    )


async def _entitlement_granted(step: Step, data: EntitlementGranted) -> None:
    step.figures.count(Metric.ENTITLEMENTS_GRANTED, step.at, book_dimension(data.book_id))
    if data.granted_by is not None:
        await repository.add_grant(step.session, data.granted_by, data.book_id, data.user_id)


async def _entitlement_revoked(step: Step, data: EntitlementRevoked) -> None:
    step.figures.count(Metric.ENTITLEMENTS_REVOKED, step.at, book_dimension(data.book_id))


async def _submission_created(step: Step, data: SubmissionCreated) -> None:
    step.figures.count(Metric.SUBMISSIONS_CREATED, step.at, f"language:{data.language}")
    await repository.advance_submission(
        step.session,
        data.submission_id,
        status="DRAFT",
        at=step.at,
        language=data.language,
        created=True,
    )


async def _submission_submitted(step: Step, data: SubmissionSubmittedV2) -> None:
    step.figures.count(Metric.SUBMISSIONS_SUBMITTED, step.at)
    await repository.advance_submission(
        step.session,
        data.submission_id,
        status="SUBMITTED",
        at=step.at,
        submitted=True,
        language=data.language,
        family_id=data.family_id,
        flags=data.flags if isinstance(data, SubmissionSubmitted) else None,
    )


async def _submission_submitted_v1(step: Step, data: SubmissionSubmittedV1) -> None:
    step.figures.count(Metric.SUBMISSIONS_SUBMITTED, step.at)
    await repository.advance_submission(
        step.session, data.submission_id, status="SUBMITTED", at=step.at, submitted=True
    )


async def _submission_reviewed(step: Step, data: SubmissionReviewed) -> None:
    approved = data.decision == "approve"
    step.figures.count(Metric.REVIEWS, step.at, f"decision:{data.decision}")
    if approved:
        step.figures.count(Metric.APPROVALS, step.at)
    await repository.advance_submission(
        step.session,
        data.submission_id,
        status=REVIEW_STATUS[data.decision],
        at=step.at,
        reviewed=True,
        approved=approved,
    )
    await repository.add_review(
        step.session,
        step.event_id,
        data.submission_id,
        data.decision,
        step.at,
        data.seconds_since_submitted,
    )


async def _book_created(step: Step, data: BookCreated) -> None:
    step.figures.count(Metric.BOOKS_CREATED, step.at, f"language:{data.language}")
    await repository.change_book(
        step.session,
        data.book_id,
        at=step.at,
        submission_id=data.submission_id,
        language=data.language,
        title=data.title,
    )


async def _book_updated(step: Step, data: BookUpdated | BookUpdatedV1) -> None:
    await repository.change_book(
        step.session,
        data.book_id,
        at=step.at,
        published=data.published,
        language=data.language,
        title=data.title,
        lineage=data if isinstance(data, BookLineage) else None,
    )


async def _book_published(step: Step, data: BookPublished | BookPublishedV1) -> None:
    step.figures.count(Metric.PUBLICATIONS, step.at, f"language:{data.language}")
    await repository.change_book(
        step.session,
        data.book_id,
        at=step.at,
        published=True,
        language=data.language,
        lineage=data if isinstance(data, BookLineage) else None,
    )


async def _book_unpublished(step: Step, data: BookUnpublished) -> None:
    step.figures.count(Metric.UNPUBLICATIONS, step.at)
    await repository.change_book(step.session, data.book_id, at=step.at, published=False)


async def _delivery_issued(step: Step, data: DeliveryIssued) -> None:
    step.figures.count(Metric.OPENS, step.at, book_dimension(data.book_id), f"method:{data.method}")
    step.figures.readers[(hour_of(step.at), data.user_id, data.book_id)] += 1
    step.figures.read(data.user_id, data.book_id, at=step.at, opened=True)


async def _reading_opened(step: Step, data: ReadingOpened) -> None:
    # #20: opened offline, uploaded later; `at` is when it happened.
    step.figures.count(Metric.OPENS, step.at, book_dimension(data.book_id), "method:offline")
    step.figures.readers[(hour_of(step.at), data.user_id, data.book_id)] += 1
    step.figures.read(data.user_id, data.book_id, at=step.at, opened=True)


async def _reading_progressed(step: Step, data: ReadingProgressed) -> None:
    step.figures.count(Metric.PROGRESS_UPDATES, step.at, book_dimension(data.book_id))
    step.figures.read(
        data.user_id, data.book_id, at=step.at, page=data.page, total_pages=data.total_pages
    )


async def _reading_completed(step: Step, data: ReadingCompleted) -> None:
    step.figures.count(Metric.COMPLETIONS, step.at, book_dimension(data.book_id))
    step.figures.read(data.user_id, data.book_id, at=step.at, completed=True)


async def _class_member_joined(step: Step, data: ClassMemberJoined) -> None:
    await reading_repository.know_class(step.session, data.class_id, data.teacher_id)
    await reading_repository.set_membership(
        step.session, step.at, class_id=data.class_id, user_id=data.user_id, member=True
    )


async def _class_member_left(step: Step, data: ClassMemberLeft) -> None:
    await reading_repository.set_membership(
        step.session, step.at, class_id=data.class_id, user_id=data.user_id, member=False
    )


async def _class_book_assigned(step: Step, data: ClassBookAssigned) -> None:
    await reading_repository.know_class(step.session, data.class_id, data.teacher_id)
    await reading_repository.set_assignment(
        step.session, step.at, assignment_id=data.assignment_id, class_id=data.class_id,
        book_id=data.book_id, due_at=data.due_at,
    )  # fmt: skip


async def _class_book_unassigned(step: Step, data: ClassBookUnassigned) -> None:
    await reading_repository.set_assignment(
        step.session, step.at, assignment_id=data.assignment_id, class_id=data.class_id,
        book_id=data.book_id, removed=True,
    )  # fmt: skip


async def _user_erased(step: Step, data: UserErased) -> None:
    # #19: the figures stay as they were, counted under the account's id,
    # which names nobody once access has erased the account (metrics never
    # held a name). The learner leaves every class: a class's figures are
    # over the learners in it now, as its report is.
    await reading_repository.set_membership(
        step.session, step.at, class_id=None, user_id=data.user_id, member=False
    )


async def _logged_only(_step: Step, _data: EventData) -> None:
    """Kept in the event log (and its xAPI statement) and nothing more: no figure
    counts a book's processing."""


# Every contract metrics accepts, legacy versions included (a test checks none is
# missing): an event type without a projector would fail only when it arrived.
PROJECTORS: dict[type[EventData], Callable[[Step, Any], Awaitable[None]]] = {
    UserRegistered: _registered,
    UserLoggedIn: _logged_in,
    RoleAssigned: _role_assigned,
    EntitlementGranted: _entitlement_granted,
    EntitlementRevoked: _entitlement_revoked,
    SubmissionCreated: _submission_created,
    SubmissionSubmitted: _submission_submitted,
    SubmissionSubmittedV2: _submission_submitted,
    SubmissionSubmittedV1: _submission_submitted_v1,
    SubmissionReviewed: _submission_reviewed,
    BookCreated: _book_created,
    BookUpdated: _book_updated,
    BookUpdatedV1: _book_updated,
    BookPublished: _book_published,
    BookPublishedV1: _book_published,
    BookUnpublished: _book_unpublished,
    BookProcessed: _logged_only,
    DeliveryIssued: _delivery_issued,
    ReadingOpened: _reading_opened,
    ReadingProgressed: _reading_progressed,
    ReadingCompleted: _reading_completed,
    ClassMemberJoined: _class_member_joined,
    ClassMemberLeft: _class_member_left,
    ClassBookAssigned: _class_book_assigned,
    ClassBookUnassigned: _class_book_unassigned,
    UserErased: _user_erased,
    UserExportRequested: _logged_only,  # the part is the handler's (consumers.py)
}


async def project(session: AsyncSession, figures: BatchFigures, envelope: Envelope) -> None:
    """Move `figures`, not necessarily the live ones, by one event (the retention
    job's fold: what a reading event added, to keep once its row is gone)."""
    data = envelope.contract()
    await PROJECTORS[type(data)](Step(session, envelope.time, envelope.id, figures), data)


async def apply_event(context: EventContext, data: EventData) -> None:
    """Move the figures by one event (the inbox has made sure it is new)."""
    step = Step(
        context.session, context.envelope.time, context.envelope.id, BatchFigures.of(context)
    )
    await PROJECTORS[type(data)](step, data)
