"""The platform's one clock: every moment it stores or compares is aware, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)
