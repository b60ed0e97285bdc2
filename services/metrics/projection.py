"""The projection: how each event moves the figures, and rebuilding them all from
the event log.

Every event lands in the hour it happened (its CloudEvents `time`), not the
hour it arrived, so late and out-of-order events count where they belong.
Counters of a batch are added up in process and written in one statement just
before the batch commits; distinct readers go to PostgreSQL exactly and to
Redis as HyperLogLogs (one per hour) once the batch has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.metrics import reading_repository, repository, xapi
from services.metrics.settings import MetricsSettings
from services.metrics.sketches import ReaderSketches
from services.metrics.terms import REVIEW_STATUS, Metric, book_dimension
from shared.bus.consumer import BatchScope, EventContext
from shared.clients.db import unit_of_work
from shared.contracts.clock import hour_of, now_utc
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    BookCreated,
    BookLineage,
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
    UserErased,
    UserLoggedIn,
    UserRegistered,
)

if TYPE_CHECKING:
    from shared.resources import Resources
    from shared.settings import ServiceSettings

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


async def log_and_apply(context: EventContext, data: EventData) -> None:
    """Keep the event in the log and move the figures by it, in one transaction."""
    BatchFigures.of(context).log(context.envelope)
    await apply_event(context, data)


async def apply_event(context: EventContext, data: EventData) -> None:
    """Move the figures by one event (the inbox has made sure it is new)."""
    session, at, figures = context.session, context.envelope.time, BatchFigures.of(context)
    match data:
        case UserRegistered():
            figures.count(Metric.REGISTRATIONS, at, f"role:{data.role.value}")
            await repository.set_role(session, data.user_id, data.role.value, at, registered=True)
        case UserLoggedIn():
            figures.count(Metric.LOGINS, at, f"role:{data.role.value}")
        case RoleAssigned():
            figures.count(Metric.ROLE_ASSIGNMENTS, at, f"role:{data.role.value}")
            await repository.set_role(session, data.user_id, data.role.value, at, registered=False)
        case EntitlementGranted():
            figures.count(Metric.ENTITLEMENTS_GRANTED, at, book_dimension(data.book_id))
            if data.granted_by is not None:
                await repository.add_grant(session, data.granted_by, data.book_id, data.user_id)
        case EntitlementRevoked():
            figures.count(Metric.ENTITLEMENTS_REVOKED, at, book_dimension(data.book_id))
        case SubmissionCreated():
            figures.count(Metric.SUBMISSIONS_CREATED, at, f"language:{data.language}")
            await repository.advance_submission(
                session,
                data.submission_id,
                status="DRAFT",
                at=at,
                language=data.language,
                created=True,
            )
        case SubmissionSubmitted():
            figures.count(Metric.SUBMISSIONS_SUBMITTED, at)
            await repository.advance_submission(
                session,
                data.submission_id,
                status="SUBMITTED",
                at=at,
                submitted=True,
                language=data.language,
                family_id=data.family_id,
            )
        case SubmissionSubmittedV1():
            figures.count(Metric.SUBMISSIONS_SUBMITTED, at)
            await repository.advance_submission(
                session, data.submission_id, status="SUBMITTED", at=at, submitted=True
            )
        case SubmissionReviewed():
            approved = data.decision == "approve"
            figures.count(Metric.REVIEWS, at, f"decision:{data.decision}")
            if approved:
                figures.count(Metric.APPROVALS, at)
            await repository.advance_submission(
                session,
                data.submission_id,
                status=REVIEW_STATUS[data.decision],
                at=at,
                reviewed=True,
                approved=approved,
            )
            await repository.add_review(
                session,
                context.envelope.id,
                data.submission_id,
                data.decision,
                at,
                data.seconds_since_submitted,
            )
        case BookCreated():
            figures.count(Metric.BOOKS_CREATED, at, f"language:{data.language}")
            await repository.change_book(
                session,
                data.book_id,
                at=at,
                submission_id=data.submission_id,
                language=data.language,
                title=data.title,
            )
        case BookUpdated() | BookUpdatedV1():
            await repository.change_book(
                session,
                data.book_id,
                at=at,
                published=data.published,
                language=data.language,
                title=data.title,
                lineage=data if isinstance(data, BookLineage) else None,
            )
        case BookPublished() | BookPublishedV1():
            figures.count(Metric.PUBLICATIONS, at, f"language:{data.language}")
            await repository.change_book(
                session,
                data.book_id,
                at=at,
                published=True,
                language=data.language,
                lineage=data if isinstance(data, BookLineage) else None,
            )
        case BookUnpublished():
            figures.count(Metric.UNPUBLICATIONS, at)
            await repository.change_book(session, data.book_id, at=at, published=False)
        case DeliveryIssued():
            figures.count(Metric.OPENS, at, book_dimension(data.book_id), f"method:{data.method}")
            figures.readers[(hour_of(at), data.user_id, data.book_id)] += 1
            figures.read(data.user_id, data.book_id, at=at, opened=True)
        case ReadingOpened():
            # #20: opened offline, uploaded later; `at` is when it happened.
            figures.count(Metric.OPENS, at, book_dimension(data.book_id), "method:offline")
            figures.readers[(hour_of(at), data.user_id, data.book_id)] += 1
            figures.read(data.user_id, data.book_id, at=at, opened=True)
        case ReadingProgressed():
            figures.count(Metric.PROGRESS_UPDATES, at, book_dimension(data.book_id))
            figures.read(
                data.user_id, data.book_id, at=at, page=data.page, total_pages=data.total_pages
            )
        case ReadingCompleted():
            figures.count(Metric.COMPLETIONS, at, book_dimension(data.book_id))
            figures.read(data.user_id, data.book_id, at=at, completed=True)
        case ClassMemberJoined():
            await reading_repository.know_class(session, data.class_id, data.teacher_id)
            await reading_repository.set_membership(
                session, at, class_id=data.class_id, user_id=data.user_id, member=True
            )
        case ClassMemberLeft():
            await reading_repository.set_membership(
                session, at, class_id=data.class_id, user_id=data.user_id, member=False
            )
        case ClassBookAssigned():
            await reading_repository.know_class(session, data.class_id, data.teacher_id)
            await reading_repository.set_assignment(
                session, at, assignment_id=data.assignment_id, class_id=data.class_id,
                book_id=data.book_id, due_at=data.due_at,
            )  # fmt: skip
        case ClassBookUnassigned():
            await reading_repository.set_assignment(
                session, at, assignment_id=data.assignment_id, class_id=data.class_id,
                book_id=data.book_id, removed=True,
            )  # fmt: skip
        case UserErased():
            # #19: the figures stay as they were, counted under the account's id,
            # which names nobody once access has erased the account (metrics never
            # held a name). The learner leaves every class: a class's figures are
            # over the learners in it now, as its report is.
            await reading_repository.set_membership(
                session, at, class_id=None, user_id=data.user_id, member=False
            )


async def rebuild(session: AsyncSession, resources: Resources, *, page_size: int = 500) -> int:
    """Recompute every aggregate from the event log, in one transaction (nobody sees
    half-built figures); returns how many events were applied.

    The log is locked against new events meanwhile (on PostgreSQL), so an event
    the consumer applies during the rebuild is neither lost nor counted twice:
    the consumer waits, then applies it to the rebuilt figures.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE event_log IN EXCLUSIVE MODE"))
    await repository.clear_derived(session)
    await ReaderSketches.of(resources).clear()
    batch = BatchScope()
    applied = 0
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        page = await repository.event_log_page(session, after, page_size)
        if not page:
            break
        for recorded in page:
            envelope = Envelope(
                id=recorded.event_id,
                source=recorded.source,
                type=recorded.event_type,
                time=recorded.occurred_at,
                subject=recorded.subject,
                dataversion=recorded.dataversion,
                data=recorded.data,
            )
            context = EventContext(
                session=session, envelope=envelope, resources=resources, batch=batch
            )
            await apply_event(context, envelope.contract())
            applied += 1
        after = (page[-1].occurred_at, page[-1].event_id)
    for action in batch.before_commit:
        await action()
    await session.commit()
    await batch.run_after_commit()
    return applied


async def keep_reader_sketches_sealed(
    resources: Resources, settings: ServiceSettings, stop: asyncio.Event
) -> None:
    """The worker's job: reseal the sketches whenever they may lack readers (Redis
    restarted empty, or a write failed), without anyone asking."""
    if not isinstance(settings, MetricsSettings):
        raise TypeError(f"the metrics worker needs MetricsSettings, not {type(settings).__name__}")
    every_seconds = settings.sketch_reseal_seconds
    if every_seconds <= 0:
        return
    sketches = ReaderSketches.of(resources)
    while not stop.is_set():
        try:
            await sketches.reseal(resources.session_factory, now_utc())
        except Exception as exc:  # Redis or the database away: try again next round
            log.info("reader sketches not resealed yet", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
