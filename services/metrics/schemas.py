"""Response bodies of the metrics API (what the dashboard and the platform team read)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class TodayAndWeek(BaseModel):
    today: int = Field(description="Since midnight UTC")
    last_7_days: int = Field(description="The last 168 hourly buckets, this one included")


class DistinctReaders(BaseModel):
    last_24h: int
    last_7_days: int


class Overview(BaseModel):
    as_of: datetime
    users_by_role: dict[str, int]
    registrations: TodayAndWeek
    logins: TodayAndWeek
    submissions_by_status: dict[str, int] = Field(
        description="DRAFT, SUBMITTED, CHANGES_REQUESTED, APPROVED, REJECTED"
    )
    review_backlog: int = Field(description="Submissions waiting for a review decision")
    overdue_reviews: int = Field(
        default=0,
        description="Of those, waiting longer than METRICS_REVIEW_OVERDUE_DAYS",
    )
    published_books: int
    pdf_opens: TodayAndWeek = Field(description="Links issued to read a book")
    distinct_readers: DistinctReaders
    distinct_readers_source: str = Field(
        description="redis-hyperloglog (real time, ±0.8 %), or postgresql (exact) when Redis "
        "is unavailable"
    )
    completions: TodayAndWeek


class Point(BaseModel):
    at: datetime = Field(description="Start of the bucket (UTC)")
    value: int


class Timeseries(BaseModel):
    metric: str
    interval: str
    from_: datetime = Field(alias="from")
    to: datetime
    book_id: uuid.UUID | None
    points: list[Point] = Field(description="Every bucket in the range, zeros included")


class DurationSummary(BaseModel):
    count: int
    median: float | None
    p90: float | None


class Funnel(BaseModel):
    created: int
    submitted: int
    reviewed: int
    approved: int
    published: int


class Waiting(BaseModel):
    submission_id: uuid.UUID
    language: str | None
    since: datetime
    waiting_seconds: float
    flags: list[str] = Field(
        default_factory=list,
        description="What its analysis flagged at submit (finding kinds, severe first)",
    )


class Workflow(BaseModel):
    funnel: Funnel = Field(description="Submissions that reached each step, ever")
    submission_to_decision_seconds: DurationSummary
    approval_to_publication_seconds: DurationSummary
    oldest_waiting_review: list[Waiting]
    oldest_waiting_publication: list[Waiting]


class BookFigures(BaseModel):
    book_id: uuid.UUID
    opens: int
    distinct_readers: int
    completions: int
    completion_rate: float = Field(description="Readers who finished / readers who started")
    average_progress: float = Field(description="Mean share of the book read, 0..1")


class GroupFigures(BaseModel):
    books: int = Field(description="Books known in the group, published or not")
    opens: int = Field(description="Links issued to read them, ever")
    distinct_readers: int = Field(description="Readers who opened any of them, ever")
    completions: int = Field(description="Readers who finished one of them (per book), ever")


class FamilyFigures(GroupFigures):
    family_id: uuid.UUID
    title: str | None = Field(description="The original's title, when known")
    published_languages: list[str]


class LanguageFigures(GroupFigures):
    language: str


class FamiliesAndLanguages(BaseModel):
    families: list[FamilyFigures] = Field(description="Most opened first")
    languages: list[LanguageFigures]


class CoverageRow(BaseModel):
    family_id: uuid.UUID
    title: str | None
    cells: dict[str, Literal["published", "in_review", "missing"]] = Field(
        description="Per language: a published version, one in the review workflow "
        "(submitted, changes requested or approved), or none"
    )
    missing: list[str] = Field(description="The languages to commission next")


class Coverage(BaseModel):
    as_of: datetime
    languages: list[str] = Field(description="Every language any family has or is getting")
    families: list[CoverageRow]


class LearnerReading(BaseModel):
    user_id: uuid.UUID
    assignment_id: uuid.UUID
    book_id: uuid.UUID
    opened: bool = Field(description="Opened the book, or reported reading it, at least once")
    opens: int = Field(description="Links issued to this learner for this book")
    progress_percent: int = Field(
        ge=0, le=100, description="The furthest page reported, in % (100: finished)"
    )
    completed_at: datetime | None
    last_read_at: datetime | None = Field(description="The last open, page or completion")


class AssignmentFigures(BaseModel):
    assignment_id: uuid.UUID
    book_id: uuid.UUID
    title: str | None
    due_at: datetime | None
    assigned_at: datetime | None
    learners: int = Field(description="Learners in the class now")
    opened: int = Field(description="Of them, how many opened the book")
    opens: int = Field(description="How often they opened it, together")
    completed: int
    completion_rate: float = Field(description="completed / learners")
    not_started: list[uuid.UUID] = Field(description="Learners who have not opened it yet")


class ClassFigures(BaseModel):
    class_id: uuid.UUID
    as_of: datetime
    learners: int
    assignments: list[AssignmentFigures]
    reading: list[LearnerReading] = Field(
        description="Each learner and assigned book: the rows of the class report"
    )


class MostReadBook(BaseModel):
    book_id: uuid.UUID
    readers: int = Field(description="Distinct readers who opened it")
    opens: int


class MostRead(BaseModel):
    since: datetime
    books: list[MostReadBook] = Field(description="Most readers first, then most opens")
