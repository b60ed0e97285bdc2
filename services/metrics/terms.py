"""The metrics service's terms: the metrics a chart can show, its intervals, the hour
and the day an event counts in, and how a book is named among the dimensions.

Every event lands in the hour it happened (its CloudEvents `time`), not the hour it
arrived, so late and out-of-order events count where they belong. The projection
(projection.py) moves the figures; figures.py reads them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from shared.contracts.clock import hour_of

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
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


def day_of(moment: datetime) -> datetime:
    return hour_of(moment).replace(hour=0)


def book_dimension(book_id: uuid.UUID) -> str:
    return f"book:{book_id}"
