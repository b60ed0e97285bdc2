"""Reading the figures: the overview, the workflow, time series and a book's
reading, from the projection's tables (queries.py) and the readers' sketches."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.metrics import queries, reading_repository
from services.metrics.models import BookState
from services.metrics.sketches import ReaderSketches
from services.metrics.terms import (
    DAY,
    HOUR,
    MAX_BUCKETS,
    OLDEST_SHOWN,
    Interval,
    Metric,
    book_dimension,
    day_of,
)
from shared.contracts.clock import hour_of
from shared.contracts.errors import NotFound, Unprocessable

log = structlog.get_logger(__name__)

DEFAULT_REVIEW_OVERDUE_DAYS = 14  # as MetricsSettings.review_overdue_days


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
        return [since + i * HOUR for i in range(int((self.next_hour - since) / HOUR))]


class MetricsReader:
    """The figures the API shows, from one session (and Redis for real-time readers)."""

    def __init__(
        self,
        session: AsyncSession,
        sketches: ReaderSketches,
        now: datetime,
        *,
        review_overdue_days: int = DEFAULT_REVIEW_OVERDUE_DAYS,
    ) -> None:
        self.session = session
        self.sketches = sketches
        self.windows = Windows(now)
        self.review_overdue = timedelta(days=review_overdue_days)

    async def _count(self, metric: Metric, since: datetime, dimension: str = "") -> int:
        return await queries.count_sum(
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
            "last_24h": await queries.distinct_readers(self.session, w.last_24h, w.next_hour),
            "last_7_days": await queries.distinct_readers(self.session, w.last_7d, w.next_hour),
        }, "postgresql"

    async def overview(self) -> dict[str, Any]:
        statuses = await queries.submissions_by_status(self.session)
        readers, source = await self.readers()
        return {
            "as_of": self.windows.now,
            "users_by_role": await queries.users_by_role(self.session),
            "registrations": await self._today_and_week(Metric.REGISTRATIONS),
            "logins": await self._today_and_week(Metric.LOGINS),
            "submissions_by_status": statuses,
            "review_backlog": statuses.get("SUBMITTED", 0),
            "overdue_reviews": await queries.overdue_reviews(
                self.session, self.windows.now - self.review_overdue
            ),
            "published_books": await queries.published_books(self.session),
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

        readers = (
            reading_repository.learners_of(teacher_id, book_id) if teacher_id and book_id else None
        )
        if metric is Metric.READERS:
            seen: dict[datetime, set[uuid.UUID]] = {}
            pairs = await queries.reader_pairs(self.session, start, end, book_id, readers)
            for hour, user in pairs:
                seen.setdefault(bucket(hour), set()).add(user)
            for at, users in seen.items():
                buckets[at] = len(users)
        elif readers is not None and book_id is not None and metric is Metric.OPENS:
            for hour, opens in await reading_repository.opens_of_readers(
                self.session, book_id, readers, start, end
            ):
                buckets[bucket(hour)] += opens
        elif readers is not None and book_id is not None and metric is Metric.COMPLETIONS:
            for at in await reading_repository.completions_of_readers(
                self.session, book_id, readers, start, end
            ):
                buckets[bucket(hour_of(at))] += 1
        else:
            dimension = book_dimension(book_id) if book_id else ""
            series = await queries.count_series(self.session, metric.value, dimension, start, end)
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
        waits = await queries.review_waits(self.session)
        to_publication = await queries.approval_to_publication(self.session)
        now = self.windows.now

        def waiting(rows: Sequence[Any]) -> list[dict[str, Any]]:
            return [
                {
                    "submission_id": submission_id,
                    "language": language,
                    "since": since,
                    "waiting_seconds": max(0.0, (now - since).total_seconds()),
                    "flags": [f for f in (flags[0] or "").split(",") if f] if flags else [],
                }
                for submission_id, language, since, *flags in rows
            ]

        return {
            "funnel": await queries.funnel(self.session),
            "submission_to_decision_seconds": summary(waits),
            "approval_to_publication_seconds": summary(to_publication),
            "oldest_waiting_review": waiting(
                await queries.oldest_waiting_review(self.session, OLDEST_SHOWN)
            ),
            "oldest_waiting_publication": waiting(
                await queries.oldest_waiting_publication(self.session, OLDEST_SHOWN)
            ),
        }

    async def families_and_languages(self) -> dict[str, Any]:
        """Opens, distinct readers and completions, ever, per story family and per
        language; a book heard of only in version 1 counts for its language alone."""
        books = await queries.known_books(self.session)
        opens = await queries.opens_by_book(self.session, Metric.OPENS.value)
        readers = {
            "family": await queries.readers_by(self.session, BookState.family_id),
            "language": await queries.readers_by(self.session, BookState.language),
        }
        completions = {
            "family": await queries.completions_by(self.session, BookState.family_id),
            "language": await queries.completions_by(self.session, BookState.language),
        }
        groups: dict[str, dict[Any, dict[str, Any]]] = {"family": {}, "language": {}}
        for book in books:
            for kind, key in (("family", book.family_id), ("language", book.language)):
                if key is None:
                    continue
                group = groups[kind].setdefault(
                    key, {"books": 0, "published_languages": set(), "opens": 0, "title": None}
                )
                group["books"] += 1
                group["opens"] += opens.get(book.book_id, 0)
                if book.published and book.language:
                    group["published_languages"].add(book.language)
                if kind == "family" and (group["title"] is None or book.derivation == "original"):
                    group["title"] = book.title or group["title"]

        def figures(kind: str, key: Any) -> dict[str, int]:
            group = groups[kind][key]
            return {
                "books": group["books"],
                "opens": group["opens"],
                "distinct_readers": readers[kind].get(key, 0),
                "completions": completions[kind].get(key, 0),
            }

        return {
            "families": [
                {
                    "family_id": family,
                    "title": group["title"],
                    "published_languages": sorted(group["published_languages"]),
                    **figures("family", family),
                }
                for family, group in sorted(
                    groups["family"].items(), key=lambda item: (-item[1]["opens"], str(item[0]))
                )
            ],
            "languages": [
                {"language": language, **figures("language", language)}
                for language in sorted(groups["language"])
            ],
        }

    async def coverage(self) -> dict[str, Any]:
        """Families by languages: published, in review, or missing (what to commission)."""
        books = [b for b in await queries.known_books(self.session) if b.family_id is not None]
        in_review = await queries.families_in_review(self.session)
        cells: dict[uuid.UUID, dict[str, str]] = {}
        titles: dict[uuid.UUID, str | None] = {}
        for family, language in in_review:
            cells.setdefault(family, {})[language] = "in_review"
        for book in books:
            assert book.family_id is not None
            row = cells.setdefault(book.family_id, {})
            if book.published and book.language:
                row[book.language] = "published"
            if book.title and (book.family_id not in titles or book.derivation == "original"):
                titles[book.family_id] = book.title
        languages = sorted({language for row in cells.values() for language in row})
        families = [
            {
                "family_id": family,
                "title": titles.get(family),
                "cells": {language: row.get(language, "missing") for language in languages},
                "missing": [language for language in languages if language not in row],
            }
            for family, row in sorted(cells.items(), key=lambda item: str(item[0]))
            if row
        ]
        return {"as_of": self.windows.now, "languages": languages, "families": families}

    async def book(self, book_id: uuid.UUID, teacher_id: uuid.UUID | None = None) -> dict[str, Any]:
        """One book's figures; with `teacher_id`, over the learners that teacher granted
        it to (a teacher sees their class, not the platform)."""
        if teacher_id is None:
            learners = None
            opens = await queries.count_sum(
                self.session,
                Metric.OPENS.value,
                book_dimension(book_id),
                datetime.min.replace(tzinfo=UTC),
                datetime.max.replace(tzinfo=UTC),
            )
        else:
            learners = reading_repository.learners_of(teacher_id, book_id)
            opens = sum(
                n
                for _, n in await reading_repository.opens_of_readers(
                    self.session, book_id, learners
                )
            )
        readers = await queries.distinct_readers(self.session, book_id=book_id, readers=learners)
        with_progress, completed, mean_progress = await queries.reading_of_book(
            self.session, book_id, learners
        )
        if (
            teacher_id is None
            and not opens
            and not with_progress
            and not await queries.book_known(self.session, book_id)
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

    async def school_class(self, class_id: uuid.UUID) -> dict[str, Any]:
        """A class's figures (#19): for each live assignment, over the learners in the
        class now, who opened the book, how often, who finished; and each learner's
        reading of each assigned book (the rows of the teacher's report)."""
        learners = await queries.class_learners(self.session, class_id)
        assignments = await queries.class_assignments(self.session, class_id)
        reading = await queries.reading_of(
            self.session, learners, [a.book_id for a, _ in assignments]
        )
        rows, per_assignment = [], []
        for assignment, title in assignments:
            opened = opens = completed = 0
            not_started = []
            for user_id in learners:
                found = reading.get((user_id, assignment.book_id))
                row, progress = found if found else (None, 0.0)
                if row is None:
                    not_started.append(user_id)
                else:
                    opened += 1
                    opens += row.opens
                    completed += row.completed_at is not None
                rows.append(
                    {
                        "user_id": user_id,
                        "assignment_id": assignment.assignment_id,
                        "book_id": assignment.book_id,
                        "opened": row is not None,
                        "opens": row.opens if row else 0,
                        "progress_percent": progress_percent(progress),
                        "completed_at": row.completed_at if row else None,
                        "last_read_at": row.last_read_at if row else None,
                    }
                )
            per_assignment.append(
                {
                    "assignment_id": assignment.assignment_id,
                    "book_id": assignment.book_id,
                    "title": title,
                    "due_at": assignment.due_at,
                    "assigned_at": assignment.assigned_at,
                    "learners": len(learners),
                    "opened": opened,
                    "opens": opens,
                    "completed": completed,
                    "completion_rate": completed / len(learners) if learners else 0.0,
                    "not_started": not_started,
                }
            )
        return {
            "class_id": class_id,
            "as_of": self.windows.now,
            "learners": len(learners),
            "assignments": per_assignment,
            "reading": rows,
        }


def progress_percent(progress: float) -> int:
    """0..100, rounded down: 100 only for a book read to its end."""
    return min(100, math.floor(progress * 100 + 1e-9))


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
