"""The rule every read model of another service's rows follows (the books that
access, delivery and metrics keep from content's events): events arrive late and
out of order, so a row remembers the time of the newest event applied to it and
an older one changes nothing of what that event decided.

One rule for the three, so they can never disagree on which event won: the newer
event wins, and of two at the same instant the one applied last. It reads the
same on a Python row (access, delivery) and in SQL (metrics' commuting upserts,
where both sides are columns).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import ColumnElement

# The stamp of a row no event has decided yet: every event is newer.
NEVER = datetime.min.replace(tzinfo=UTC)


@overload
def latest_wins(incoming: datetime, stored: datetime) -> bool: ...


@overload
def latest_wins(incoming: Any, stored: Any) -> ColumnElement[bool]: ...


def latest_wins(incoming: Any, stored: Any) -> Any:
    """Whether the event at `incoming` decides a row last decided at `stored`."""
    return incoming >= stored
