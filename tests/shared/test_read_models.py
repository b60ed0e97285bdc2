"""#39: the one latest-wins rule the three book read models share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, DateTime, MetaData, Table
from sqlalchemy.dialects.postgresql import dialect

from shared.bus.read_models import NEVER, latest_wins

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_the_newer_event_decides_and_an_older_one_does_not() -> None:
    assert latest_wins(AT, AT - timedelta(microseconds=1))
    assert not latest_wins(AT - timedelta(microseconds=1), AT)
    assert latest_wins(AT, NEVER)  # a row no event has decided takes the first


def test_of_two_at_the_same_instant_the_one_applied_last_decides() -> None:
    assert latest_wins(AT, AT)


def test_the_same_rule_in_sql() -> None:
    books = Table("books", MetaData(), Column("state_changed_at", DateTime(timezone=True)))
    rule = latest_wins(books.c.state_changed_at, books.c.state_changed_at)
    sql = rule.compile(dialect=dialect())  # type: ignore[no-untyped-call]
    assert ">=" in str(sql)
