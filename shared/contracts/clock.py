"""The platform's one clock: every moment it stores or compares is aware, in UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator


def now_utc() -> datetime:
    return datetime.now(UTC)


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour a moment falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _in_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+14:00 has no UTC
        raise ValueError("this moment has no UTC time") from exc


RFC3339_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _written_out(value: object) -> object:
    # A number, or digits, are not a date-time here (pydantic would read them as
    # seconds since 1970): the schema says RFC 3339, and the API refuses the rest.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not RFC3339_START.match(value):
        raise ValueError("a date-time is written out as RFC 3339 (2026-12-04T10:00:00Z)")
    return value


# A moment a client sends, written out with its zone, held in UTC: one that has no
# UTC time (at the ends of the calendar) is a 422, not a comparison that fails later.
UtcInstant = Annotated[AwareDatetime, BeforeValidator(_written_out), AfterValidator(_in_utc)]
