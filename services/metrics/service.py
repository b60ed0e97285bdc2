"""The rules of the metrics service: how each event moves the figures, and how the
figures are read.

Every event lands in the hour it happened (its CloudEvents `time`), not the
hour it arrived, so late and out-of-order events count where they belong.
Counters of a batch are added up in process and written in one statement just
before the batch commits; distinct readers go to PostgreSQL exactly and to
Redis as HyperLogLogs (one per hour) once the batch has committed, so the
overview's real-time reader counts cost one PFCOUNT and no table scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.metrics import repository
from services.metrics.settings import MetricsSettings
from shared.clock import now_utc
from shared.consumer import BatchScope, EventContext
from shared.db import unit_of_work
from shared.errors import NotFound, Unprocessable
from shared.events import (
    BookCreated,
    BookPublished,
    BookUnpublished,
    BookUpdated,
    DeliveryIssued,
    EntitlementGranted,
    EntitlementRevoked,
    Envelope,
    EventData,
    ReadingCompleted,
    ReadingProgressed,
    RoleAssigned,
    SubmissionCreated,
    SubmissionReviewed,
    SubmissionSubmitted,
    UserLoggedIn,
    UserRegistered,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from shared.app import Resources
    from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
READER_SKETCH_TTL = int(timedelta(days=9).total_seconds())  # the 7-day window, and slack
READER_WINDOW = timedelta(days=8)  # what a reseal puts back: the 7-day window and its edge
MAX_BUCKETS = 2_000
OLDEST_SHOWN = 5

REVIEW_STATUS = {
    "approve": "APPROVED",
    "request_changes": "CHANGES_REQUESTED",
    "reject": "REJECTED",
}


class Metric(StrEnum):
    """What the timeseries endpoint can chart. `readers` counts distinct readers per
    bucket; the rest count events."""

    REGISTRATIONS = "registrations"
    LOGINS = "logins"
    ROLE_ASSIGNMENTS = "role_assignments"
    ENTITLEMENTS_GRANTED = "entitlements_granted"
    ENTITLEMENTS_REVOKED = "entitlements_revoked"
    SUBMISSIONS_CREATED = "submissions_created"
    SUBMISSIONS_SUBMITTED = "submissions_submitted"
    REVIEWS = "reviews"
    APPROVALS = "approvals"
    BOOKS_CREATED = "books_created"
    PUBLICATIONS = "publications"
    UNPUBLICATIONS = "unpublications"
    OPENS = "opens"
    PROGRESS_UPDATES = "progress_updates"
    COMPLETIONS = "completions"
    READERS = "readers"


# The metrics that can be asked for one book (a teacher's view).
BOOK_METRICS = frozenset({Metric.OPENS, Metric.COMPLETIONS, Metric.READERS})


class Interval(StrEnum):
    HOUR = "hour"
    DAY = "day"

    @property
    def length(self) -> timedelta:
        return HOUR if self is Interval.HOUR else DAY


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    return hour_of(moment).replace(hour=0)


def book_dimension(book_id: uuid.UUID) -> str:
    return f"book:{book_id}"


@dataclass(frozen=True)
class ReaderSketches:
    """Distinct readers per hour as Redis HyperLogLogs (12 KB at most each, ±0.8 %):
    a window's count is one PFCOUNT over its hours, whatever the number of readers.

    A count comes from them only when they are known to be complete for the window
    (`complete_for`): Redis holds the seal (written by the worker after it put
    every reader of the last days in, and lost with everything else when Redis
    restarts empty), and PostgreSQL knows of no batch whose sketch write is still
    unconfirmed. Otherwise the figure is counted exactly in PostgreSQL and says
    so, while the worker reseals the sketches from `reader_hours` on its own.
    """

    redis: Redis
    prefix: str

    @classmethod
    def of(cls, resources: Resources) -> ReaderSketches:
        # Named after the deployment, like its queues, so deployments can share a Redis.
        return cls(resources.redis, f"{resources.settings.resource_prefix}metrics:readers:")

    def key(self, hour: datetime) -> str:
        return self.prefix + hour.strftime("%Y%m%d%H")

    @property
    def seal_key(self) -> str:
        # No expiry: only losing Redis's data (a restart, a flush) removes it.
        return self.prefix + "sealed"

    async def complete_for(self, session: AsyncSession, since: datetime) -> bool:
        if not await self.redis.exists(self.seal_key):
            return False
        return not await repository.unsealed_hours(session, since)

    async def reseal(self, session_factory: async_sessionmaker[AsyncSession], now: datetime) -> int:
        """Put back what the sketches may lack, from PostgreSQL's exact `reader_hours`:
        every hour of the window after Redis lost its data, else the hours with
        unconfirmed writes. Returns how many hours were resealed."""
        since = hour_of(now) - READER_WINDOW
        sealed = bool(await self.redis.exists(self.seal_key))
        async with session_factory() as session:
            # Pending first, then the readers: a batch committed in between is in
            # the readers and keeps its own pending count, so nothing is lost.
            pending = await repository.unsealed_hours(session, since)
            if sealed and not pending:
                return 0
            pairs = await repository.reader_pairs(session, since, hour_of(now) + HOUR)
        if sealed:
            pairs = [(hour, user) for hour, user in pairs if hour in pending]
        await self.add((hour, user, None) for hour, user in pairs)
        async with unit_of_work(session_factory) as session:
            await repository.sketches_written(session, pending)
        if not sealed:
            await self.redis.set(self.seal_key, now.isoformat())
        hours = len({hour for hour, _ in pairs})
        log.info("reader sketches resealed", hours=hours, after_data_loss=not sealed)
        return hours

    async def add(self, readers: Iterable[tuple[datetime, uuid.UUID, uuid.UUID | None]]) -> None:
        """Idempotent: a reader added twice is counted once."""
        by_hour: dict[datetime, set[str]] = {}
        for hour, user_id, _book in readers:
            by_hour.setdefault(hour, set()).add(str(user_id))
        if not by_hour:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for hour, users in sorted(by_hour.items()):
                pipe.pfadd(self.key(hour), *sorted(users))
                pipe.expire(self.key(hour), READER_SKETCH_TTL)
            await pipe.execute()

    async def count(self, hours: Iterable[datetime]) -> int:
        return int(await self.redis.pfcount(*(self.key(h) for h in hours)))

    async def clear(self) -> None:
        keys = [key async for key in self.redis.scan_iter(match=self.prefix + "*")]
        if keys:
            await self.redis.delete(*keys)


# --- applying events ---------------------------------------------------------------------


@dataclass
class BatchFigures:
    """What one batch of events adds, gathered so it is written once per batch."""

    counts: Counter[repository.CountKey] = field(default_factory=Counter)
    # (hour, reader, book) -> opens in this batch
    readers: Counter[tuple[datetime, uuid.UUID, uuid.UUID]] = field(default_factory=Counter)
    reading: dict[repository.ReadingKey, repository.ReadingStep] = field(default_factory=dict)
    logged: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, context: EventContext) -> BatchFigures:
        figures = context.batch.scratch.get("metrics")
        if figures is None:
            figures = context.batch.scratch["metrics"] = cls()
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

    def read(self, user_id: uuid.UUID, book_id: uuid.UUID, **step: Any) -> None:
        self.reading.setdefault((user_id, book_id), repository.ReadingStep()).merge(**step)

    def log(self, envelope: Envelope) -> None:
        self.logged.append(repository.event_log_row(envelope, now_utc()))

    async def write(self, session: AsyncSession) -> None:
        await repository.add_to_event_log(session, self.logged)
        await repository.add_counts(session, dict(self.counts))
        await repository.add_reader_hours(session, self.readers)
        await repository.mark_sketches_pending(session, (hour for hour, _, _ in self.readers))
        await repository.advance_reading(session, self.reading)


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
            )
        case BookUpdated():
            await repository.change_book(
                session, data.book_id, at=at, published=data.published, language=data.language
            )
        case BookPublished():
            figures.count(Metric.PUBLICATIONS, at, f"language:{data.language}")
            await repository.change_book(
                session, data.book_id, at=at, published=True, language=data.language
            )
        case BookUnpublished():
            figures.count(Metric.UNPUBLICATIONS, at)
            await repository.change_book(session, data.book_id, at=at, published=False)
        case DeliveryIssued():
            figures.count(Metric.OPENS, at, book_dimension(data.book_id), f"method:{data.method}")
            figures.readers[(hour_of(at), data.user_id, data.book_id)] += 1
        case ReadingProgressed():
            figures.count(Metric.PROGRESS_UPDATES, at, book_dimension(data.book_id))
            figures.read(data.user_id, data.book_id, page=data.page, total_pages=data.total_pages)
        case ReadingCompleted():
            figures.count(Metric.COMPLETIONS, at, book_dimension(data.book_id))
            figures.read(data.user_id, data.book_id, completed_at=at)


# --- reading the figures -----------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Windows:
    """The windows every figure is read over, from one `now`."""

    now: datetime

    @property
    def next_hour(self) -> datetime:
        return hour_of(self.now) + HOUR

    @property
    def today(self) -> datetime:
        return day_of(self.now)

    @property
    def last_24h(self) -> datetime:  # the 24 hourly buckets ending with the current one
        return self.next_hour - DAY

    @property
    def last_7d(self) -> datetime:
        return self.next_hour - 7 * DAY

    def hours(self, since: datetime) -> list[datetime]:
        count = int((self.next_hour - since) / HOUR)
        return [since + i * HOUR for i in range(count)]


class MetricsReader:
    """The figures the API shows, from one session (and Redis for real-time readers)."""

    def __init__(self, session: AsyncSession, sketches: ReaderSketches, now: datetime) -> None:
        self.session = session
        self.sketches = sketches
        self.windows = Windows(now)

    async def _count(self, metric: Metric, since: datetime, dimension: str = "") -> int:
        return await repository.count_sum(
            self.session, metric.value, dimension, since, self.windows.next_hour
        )

    async def _today_and_week(self, metric: Metric) -> dict[str, int]:
        return {
            "today": await self._count(metric, self.windows.today),
            "last_7_days": await self._count(metric, self.windows.last_7d),
        }

    async def readers(self) -> tuple[dict[str, int], str]:
        """Distinct readers in the last 24 h and 7 d: from the hourly HyperLogLogs when
        Redis answers, else counted exactly in PostgreSQL."""
        w = self.windows
        try:
            if await self.sketches.complete_for(self.session, w.last_7d):
                day = await self.sketches.count(w.hours(w.last_24h))
                week = await self.sketches.count(w.hours(w.last_7d))
                return {"last_24h": day, "last_7_days": week}, "redis-hyperloglog"
            log.info("reader sketches incomplete; counting in PostgreSQL")
        except Exception:
            log.warning("reader sketches unavailable; counting in PostgreSQL")
        return {
            "last_24h": await repository.distinct_readers(self.session, w.last_24h, w.next_hour),
            "last_7_days": await repository.distinct_readers(self.session, w.last_7d, w.next_hour),
        }, "postgresql"

    async def overview(self) -> dict[str, Any]:
        statuses = await repository.submissions_by_status(self.session)
        readers, source = await self.readers()
        return {
            "as_of": self.windows.now,
            "users_by_role": await repository.users_by_role(self.session),
            "registrations": await self._today_and_week(Metric.REGISTRATIONS),
            "logins": await self._today_and_week(Metric.LOGINS),
            "submissions_by_status": statuses,
            "review_backlog": statuses.get("SUBMITTED", 0),
            "published_books": await repository.published_books(self.session),
            "pdf_opens": await self._today_and_week(Metric.OPENS),
            "distinct_readers": readers,
            "distinct_readers_source": source,
            "completions": await self._today_and_week(Metric.COMPLETIONS),
        }

    async def timeseries(
        self,
        metric: Metric,
        interval: Interval,
        since: datetime,
        until: datetime,
        book_id: uuid.UUID | None = None,
        teacher_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        """`teacher_id`: count only the learners that teacher granted the book to."""
        start, end = bucket_range(interval, since, until)
        step = interval.length
        buckets = {start + i * step: 0 for i in range(int((end - start) / step))}

        def bucket(hour: datetime) -> datetime:
            return hour if interval is Interval.HOUR else day_of(hour)

        readers = repository.learners_of(teacher_id, book_id) if teacher_id and book_id else None
        if metric is Metric.READERS:
            seen: dict[datetime, set[uuid.UUID]] = {}
            pairs = await repository.reader_pairs(self.session, start, end, book_id, readers)
            for hour, user in pairs:
                seen.setdefault(bucket(hour), set()).add(user)
            for at, users in seen.items():
                buckets[at] = len(users)
        elif readers is not None and book_id is not None and metric is Metric.OPENS:
            for hour, opens in await repository.opens_of_readers(
                self.session, book_id, readers, start, end
            ):
                buckets[bucket(hour)] += opens
        elif readers is not None and book_id is not None and metric is Metric.COMPLETIONS:
            for at in await repository.completions_of_readers(
                self.session, book_id, readers, start, end
            ):
                buckets[bucket(hour_of(at))] += 1
        else:
            dimension = book_dimension(book_id) if book_id else ""
            series = await repository.count_series(
                self.session, metric.value, dimension, start, end
            )
            for hour, count in series:
                buckets[bucket(hour)] += count
        return {
            "metric": metric.value,
            "interval": interval.value,
            "from": start,
            "to": end,
            "book_id": book_id,
            "points": [{"at": at, "value": value} for at, value in sorted(buckets.items())],
        }

    async def workflow(self) -> dict[str, Any]:
        waits = await repository.review_waits(self.session)
        to_publication = await repository.approval_to_publication(self.session)
        now = self.windows.now

        def waiting(rows: Sequence[Any]) -> list[dict[str, Any]]:
            return [
                {
                    "submission_id": submission_id,
                    "language": language,
                    "since": since,
                    "waiting_seconds": max(0.0, (now - since).total_seconds()),
                }
                for submission_id, language, since in rows
            ]

        return {
            "funnel": await repository.funnel(self.session),
            "submission_to_decision_seconds": summary(waits),
            "approval_to_publication_seconds": summary(to_publication),
            "oldest_waiting_review": waiting(
                await repository.oldest_waiting_review(self.session, OLDEST_SHOWN)
            ),
            "oldest_waiting_publication": waiting(
                await repository.oldest_waiting_publication(self.session, OLDEST_SHOWN)
            ),
        }

    async def book(self, book_id: uuid.UUID, teacher_id: uuid.UUID | None = None) -> dict[str, Any]:
        """One book's figures; with `teacher_id`, over the learners that teacher granted
        it to (a teacher sees their class, not the platform)."""
        if teacher_id is None:
            learners = None
            opens = await repository.count_sum(
                self.session,
                Metric.OPENS.value,
                book_dimension(book_id),
                datetime.min.replace(tzinfo=UTC),
                datetime.max.replace(tzinfo=UTC),
            )
        else:
            learners = repository.learners_of(teacher_id, book_id)
            opens = sum(
                n for _, n in await repository.opens_of_readers(self.session, book_id, learners)
            )
        readers = await repository.distinct_readers(self.session, book_id=book_id, readers=learners)
        with_progress, completed, mean_progress = await repository.reading_of_book(
            self.session, book_id, learners
        )
        if (
            teacher_id is None
            and not opens
            and not with_progress
            and not await repository.book_known(self.session, book_id)
        ):
            raise NotFound("No figures for this book.")
        started = max(readers, with_progress)
        return {
            "book_id": book_id,
            "opens": opens,
            "distinct_readers": readers,
            "completions": completed,
            "completion_rate": completed / started if started else 0.0,
            "average_progress": mean_progress,
        }


def summary(values: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "median": percentile(values, 0.5),
        "p90": percentile(values, 0.9),
    }


def bucket_range(interval: Interval, since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """Whole buckets covering [since, until); refuses inverted and oversized ranges."""
    if since.tzinfo is None or until.tzinfo is None:
        raise Unprocessable("from and to need a time zone (e.g. 2026-11-22T00:00:00Z).")
    if until <= since:
        raise Unprocessable("to must be after from.", code="inverted-range")
    floor = hour_of if interval is Interval.HOUR else day_of
    start = floor(since)
    end = floor(until)
    if end < until:
        end += interval.length
    buckets = (end - start) / interval.length
    if buckets > MAX_BUCKETS:
        raise Unprocessable(
            f"That range holds {int(buckets)} {interval.value}s; "
            f"at most {MAX_BUCKETS} per request.",
            code="range-too-large",
        )
    return start, end


# --- rebuilding ----------------------------------------------------------------------------


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
