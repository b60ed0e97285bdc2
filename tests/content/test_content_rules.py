"""Content's pure rules as unit tests (no database): optimistic concurrency and
metadata changes. The endpoints that use them are tested over real HTTP and
PostgreSQL in test_content_submissions.py."""

from __future__ import annotations

import pytest

from services.content.editing import apply_changes, check_if_match
from services.content.models import Submission
from services.content.schemas import SubmissionUpdate
from shared.contracts.errors import PreconditionFailed, PreconditionRequired, Unprocessable


def test_a_change_needs_the_version_it_was_read_at() -> None:
    with pytest.raises(PreconditionRequired):
        check_if_match(None, 3)
    with pytest.raises(PreconditionFailed) as stale:
        check_if_match('"2"', 3)
    assert stale.value.code == "version-mismatch"
    check_if_match('"3"', 3)
    check_if_match('W/"3"', 3)  # a weak tag names the same version
    check_if_match('"1", "3"', 3)  # any of a list
    check_if_match("*", 3)


def draft(**values: object) -> Submission:
    return Submission(title="The Lion", age_min=4, age_max=8, **values)


def test_only_the_fields_sent_change() -> None:
    row = draft()
    assert apply_changes(row, SubmissionUpdate(title="The Lioness")) is True
    assert (row.title, row.age_min, row.age_max) == ("The Lioness", 4, 8)
    assert apply_changes(row, SubmissionUpdate()) is False


def test_the_age_range_is_checked_as_a_whole() -> None:
    row = draft()
    with pytest.raises(Unprocessable):
        apply_changes(row, SubmissionUpdate(age_min=9))  # above the stored age_max
    assert row.age_min == 4  # nothing applied
    assert apply_changes(row, SubmissionUpdate(age_min=9, age_max=12)) is True
    assert (row.age_min, row.age_max) == (9, 12)


def test_a_field_may_change_but_not_be_emptied() -> None:
    row = draft()
    with pytest.raises(Unprocessable):
        apply_changes(row, SubmissionUpdate(title=None))
    assert row.title == "The Lion"
