"""The figures' endpoints (`/v1/metrics/...`): thin, the rules live in figures.py
and queries.py one level up; who may see what is in dependencies.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.metrics import queries
from services.metrics.dependencies import (
    PlatformViewer,
    ReaderDep,
    platform_figures,
    require_book_figures,
    require_class_figures,
    require_most_read,
)
from services.metrics.schemas import (
    BookFigures,
    ClassFigures,
    Coverage,
    FamiliesAndLanguages,
    MostRead,
    Overview,
    Timeseries,
    Workflow,
)
from services.metrics.terms import BOOK_METRICS, Interval, Metric
from shared.contracts.clock import now_utc
from shared.contracts.errors import Unprocessable
from shared.http.problems import problem_responses
from shared.service.deps import CurrentPrincipal, ResourcesDep, SessionDep

metrics = APIRouter(prefix="/v1/metrics", tags=["metrics"])


@metrics.get(
    "/overview",
    response_model=Overview,
    summary="Headline figures: people, workflow, reading",
    description="CONTENT_ADMIN and up. Days are UTC; `last_7_days` is the last 168 hourly "
    "buckets. Distinct readers come from Redis HyperLogLogs in real time (exact counts "
    "from PostgreSQL when Redis is unavailable).",
    responses=problem_responses(401, 403, 503),
)
async def overview(_viewer: PlatformViewer, reader: ReaderDep) -> dict[str, Any]:
    return await reader.overview()


@metrics.get(
    "/timeseries",
    response_model=Timeseries,
    summary="One metric over time, in hourly or daily buckets (zeros included)",
    description="CONTENT_ADMIN and up; a TEACHER may ask for `opens`, `readers` or "
    "`completions` of a book they granted (`book_id`), counted over the learners they "
    "granted it to. `from` defaults to 7 days (hourly: "
    "48 hours) before `to`, which defaults to now. At most 2,000 buckets.",
    responses=problem_responses(401, 403, 422, 503),
)
async def timeseries(
    principal: CurrentPrincipal,
    resources: ResourcesDep,
    session: SessionDep,
    reader: ReaderDep,
    metric: Metric,
    interval: Interval = Interval.DAY,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    book_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    # Who may ask comes before any work on what they asked.
    teacher_id = None
    if book_id is None:
        await platform_figures(principal, resources)
    else:
        teacher_id = await require_book_figures(principal, resources, session, book_id)
    if book_id is not None and metric not in BOOK_METRICS:
        raise Unprocessable(
            f"Per book, the metrics are {', '.join(sorted(BOOK_METRICS))}.", code="not-per-book"
        )
    until = _within_range(until, "to") if until else now_utc()
    default_span = timedelta(hours=48) if interval is Interval.HOUR else timedelta(7)
    since = _within_range(since, "from") if since else until - default_span
    return await reader.timeseries(metric, interval, since, until, book_id, teacher_id)


# Figures exist from the platform's first year on; anything outside this is a
# typo or a probe (and 0001 or 9999 overflow date arithmetic).
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def _within_range(moment: datetime, name: str) -> datetime:
    """An instant in UTC, with its zone, within the range."""
    out_of_range = Unprocessable(
        f"`{name}` must lie between {EARLIEST.date()} and {LATEST.date()}.", code="out-of-range"
    )
    try:
        if moment.tzinfo is None:
            raise Unprocessable("from and to need a time zone (e.g. 2026-11-22T00:00:00Z).")
        moment = moment.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+14:00 has no UTC
        raise out_of_range from exc
    if not EARLIEST <= moment < LATEST:
        raise out_of_range
    return moment


@metrics.get(
    "/workflow",
    response_model=Workflow,
    summary="The review and publishing funnel, its times, and what waits longest",
    description="CONTENT_ADMIN and up. Times in seconds: median and p90 from submission "
    "to review decision, and from approval to first publication.",
    responses=problem_responses(401, 403, 503),
)
async def workflow(_viewer: PlatformViewer, reader: ReaderDep) -> dict[str, Any]:
    return await reader.workflow()


@metrics.get(
    "/families",
    response_model=FamiliesAndLanguages,
    summary="Reading per story family and per language",
    description="CONTENT_ADMIN and up. Opens, distinct readers and completions, ever, "
    "over every version of each story family and over every book of each language.",
    responses=problem_responses(401, 403, 503),
)
async def families_and_languages(_viewer: PlatformViewer, reader: ReaderDep) -> dict[str, Any]:
    return await reader.families_and_languages()


@metrics.get(
    "/coverage",
    response_model=Coverage,
    summary="Which translations exist, are under way, or are missing",
    description="CONTENT_ADMIN and up. Story families by languages: `published`, "
    "`in_review` or `missing`, so a content admin sees which translations to "
    "commission next.",
    responses=problem_responses(401, 403, 503),
)
async def coverage(_viewer: PlatformViewer, reader: ReaderDep) -> dict[str, Any]:
    return await reader.coverage()


@metrics.get(
    "/books/{book_id}",
    response_model=BookFigures,
    summary="One book's reading figures",
    description="CONTENT_ADMIN and up: the whole platform's. A TEACHER who granted the "
    "book to someone: over the learners they granted it to, no one else.",
    responses=problem_responses(401, 403, 404, 503),
)
async def book_figures(
    book_id: uuid.UUID,
    principal: CurrentPrincipal,
    resources: ResourcesDep,
    session: SessionDep,
    reader: ReaderDep,
) -> dict[str, Any]:
    teacher_id = await require_book_figures(principal, resources, session, book_id)
    return await reader.book(book_id, teacher_id)


@metrics.get(
    "/classes/{class_id}",
    response_model=ClassFigures,
    summary="One class's figures: each assignment's opens and completion, each learner's reading",
    description="The class's TEACHER, and CONTENT_ADMIN and up. Over the learners in the class "
    "now, by id (names live in access: its `GET /v1/classes/{id}/progress` report joins them). "
    "Another teacher's class is a 404.",
    responses=problem_responses(401, 403, 404, 503),
)
async def class_figures(
    class_id: uuid.UUID,
    principal: CurrentPrincipal,
    resources: ResourcesDep,
    session: SessionDep,
    reader: ReaderDep,
) -> dict[str, Any]:
    await require_class_figures(principal, resources, session, class_id)
    return await reader.school_class(class_id)


@metrics.get(
    "/most-read",
    response_model=MostRead,
    summary="The books read by the most readers in the last days",
    description="CONTENT_ADMIN and up, and the content service (its OPDS feeds' most "
    "read group). Ranked by distinct readers, then opens, by when they happened, every "
    "way of opening counted: one reader's many opens are one reader.",
    responses=problem_responses(401, 403, 422, 503),
)
async def most_read(
    principal: CurrentPrincipal,
    resources: ResourcesDep,
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    await require_most_read(principal, resources)
    since = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    found = await queries.most_read_books(session, since, limit)
    return {
        "since": since,
        "books": [{"book_id": b, "readers": r, "opens": n} for b, r, n in found],
    }
