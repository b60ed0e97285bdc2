"""The editing rules every content aggregate shares: the roles that act on content,
optimistic concurrency (`If-Match`), metadata changes with their lineage and
credits, staff reads confirmed now, and paging. The aggregates' own rules live
beside it: submissions.py (writing), reviews.py (the review), books.py (making
and publishing books), catalog.py (what readers see).

Every transition locks its row, checks (in this order) that the caller may see
the resource (else 404, so ids leak nothing), may act on it (403), still holds
its current version (`If-Match`: 428 if missing, 412 if stale) and that the
transition is legal from the current state (409). Then it records the step in
the history and its event in the outbox, in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from services.content.families import Family, check_derivation, families_of
from services.content.models import Book, Submission
from services.content.repository import ContentRepository
from services.content.schemas import MetadataChanges
from shared.clients.access_client import AccessClient
from shared.contracts.decisions import Action
from shared.contracts.errors import PreconditionFailed, PreconditionRequired, Unprocessable
from shared.contracts.roles import Role
from shared.http.auth import Principal
from shared.http.pagination import encode_cursor

WRITER = Role.VOLUNTEER
REVIEWER = Role.STORY_MANAGER
BOOK_MAKER = Role.BOOK_MANAGER
PUBLISHER = Role.CONTENT_ADMIN


def etag(version: int) -> str:
    return f'"{version}"'


def if_match_holds(if_match: str, version: int) -> bool:
    """Whether an If-Match names `version` (or `*`); weak tags compare as strong ones."""
    tags = [t.strip().removeprefix("W/").strip('"') for t in if_match.split(",")]
    return "*" in tags or str(version) in tags


def check_if_match(if_match: str | None, version: int) -> None:
    """Optimistic concurrency: the caller must hold the current version."""
    if if_match is None:
        raise PreconditionRequired(
            "Send the version you read as If-Match (the ETag of the GET).", current_version=version
        )
    if not if_match_holds(if_match, version):
        raise PreconditionFailed(
            "Someone changed this since you read it: read it again, then retry.",
            code="version-mismatch",
            current_version=version,
        )


def apply_changes(row: Submission | Book, changes: MetadataChanges) -> bool:
    """Set the fields a PATCH sent (after checking them together); whether any were."""
    values = changes.model_dump(exclude_unset=True, mode="json")
    if any(v is None for v in values.values()):
        raise Unprocessable("Fields may be changed but not emptied.")
    if values.get("age_min", row.age_min) > values.get("age_max", row.age_max):
        raise Unprocessable("age_min must not be above age_max.")
    for name, value in values.items():
        setattr(row, name, value)
    return bool(values)


async def check_lineage(repository: ContentRepository, row: Submission | Book) -> None:
    """A derived story still translates or adapts its source after this change."""
    if row.derived_from is None:
        return
    # Not flushed first: the change is checked before it is written (a published
    # book moved into a taken slot would otherwise fail on the unique index).
    with repository.session.no_autoflush:
        source = await repository.book(row.derived_from)
    if source is not None:
        check_derivation(
            row.derivation, source, language=row.language, reading_level=row.reading_level
        )


async def check_credited_accounts(
    repository: ContentRepository, row: Submission | Book, *, author_id: uuid.UUID | None = None
) -> None:
    """A credit names an account only if that account took part in the story's family
    (#37 F9: `credits[].account_id` took any account): the author of one of its
    submissions, or an account a book of it already credits. `author_id` is the row's
    own author, for a submission not written yet."""
    named = {str(c["account_id"]) for c in row.credits or [] if c.get("account_id")}
    if not named:
        return
    with repository.session.no_autoflush:
        took_part = await repository.family_participants(row.family_id)
    if author_id is not None:
        took_part.add(str(author_id))
    strangers = sorted(named - took_part)
    if strangers:
        raise Unprocessable(
            "A credit may name only an account that took part in this story (an author of "
            "one of its submissions, or someone a version of it already credits); credit "
            "anyone else by name alone.",
            code="credit-account-not-a-participant",
            account_ids=strangers,
        )


async def families_for(
    repository: ContentRepository, books: Iterable[Book]
) -> dict[uuid.UUID, Family]:
    """The families of these books, every member loaded at once (one query a page)."""
    return families_of(await repository.family_members(b.family_id for b in books))


async def holds_now(
    access: AccessClient, actor: Principal | None, action: Action, minimum: Role
) -> bool:
    """Whether the caller may `action` *now*, for reads only staff may do.

    The token's role is the one it was signed with, up to its lifetime ago; a
    demotion must end a manager's reads at once, as it ends their writes. A token
    too weak on its face costs nothing; one strong enough is confirmed with access
    (a cached decision, emptied on every role change).
    """
    if actor is None or actor.kind != "user" or not actor.role.at_least(minimum):
        return False
    return (await access.decide(actor.user_id, action)).allow


AWAITING_REVIEW = ("SUBMITTED", "IN_REVIEW")


def is_overdue(submission: Submission, overdue_days: int, now: datetime) -> bool:
    """Waiting for a review (submitted, or taken but not decided) longer than allowed."""
    return (
        submission.status in AWAITING_REVIEW
        and submission.submitted_at is not None
        and now - submission.submitted_at > timedelta(days=overdue_days)
    )


def iso(moment: datetime | None) -> str:
    assert moment is not None
    return moment.isoformat()


def page_of(rows: list[Any], limit: int, key: Any) -> tuple[list[Any], str | None]:
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(*key(rows[-1]))
