"""The demo's month of reading is the same on every run of a day, so the second run
sends only events delivery already holds (`tests/platform/test_demo.py` checks that
through the platform; here the reason it holds, at any hour)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stories.demo.history import reading_history
from stories.demo.library import DAYS

SHELF = ["book-a", "book-b", "book-c"]


def test_every_run_of_a_day_draws_the_same_month_and_nothing_of_today() -> None:
    morning = datetime(2026, 12, 7, 0, 1, tzinfo=UTC)
    for later in (timedelta(hours=1), timedelta(hours=17, minutes=59), timedelta(hours=23)):
        assert reading_history(3, SHELF, morning) == reading_history(3, SHELF, morning + later)
    events = reading_history(3, SHELF, morning)
    assert events, "a month of reading"
    assert all(datetime.fromisoformat(e["at"]) < morning.replace(minute=0) for e in events)
    # All of it inside the dashboard's window, a 30-day range ending whenever today.
    assert min(datetime.fromisoformat(e["at"]) for e in events) >= morning.replace(
        minute=0
    ) - timedelta(days=DAYS - 1)


def test_a_run_the_next_day_keeps_every_day_it_shares_with_the_last() -> None:
    today = datetime(2026, 12, 7, 18, 30, tzinfo=UTC)
    before = {e["id"]: e for e in reading_history(5, SHELF, today)}
    after = {e["id"]: e for e in reading_history(5, SHELF, today + timedelta(days=1))}
    shared = before.keys() & after.keys()
    assert shared
    assert all(before[i] == after[i] for i in shared)
    added = {datetime.fromisoformat(after[i]["at"]).date() for i in after.keys() - shared}
    assert added <= {today.date()}, "only the day that has ended since"
    # Learners read differently: their months are their own.
    assert reading_history(6, SHELF, today) != reading_history(5, SHELF, today)
