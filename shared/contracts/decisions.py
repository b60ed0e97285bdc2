"""Authorization decisions as the services agree on them: the actions, a decision
and its request, and who may read a book, the one rule (pure: access evaluates it
over its tables, delivery over the read model it keeps; the two cannot disagree).
The cache that shares decisions between processes is shared/clients/decision_cache.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.roles import Role


class Action(StrEnum):
    BOOK_READ = "book:read"
    BOOK_CREATE = "book:create"
    BOOK_EDIT = "book:edit"
    BOOK_PUBLISH = "book:publish"
    SUBMISSION_CREATE = "submission:create"
    SUBMISSION_REVIEW = "submission:review"
    ENTITLEMENT_GRANT = "entitlement:grant"
    METRICS_READ = "metrics:read"
    USER_MANAGE = "user:manage"


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID
    action: Action
    resource_id: uuid.UUID | None = Field(
        default=None, description="The book, submission… the action is about, if any"
    )


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    allow: bool
    reason: str
    languages: tuple[str, ...] | None = Field(
        default=None,
        description="For an allowed submission:review, the languages the reviewer "
        "reviews (empty: every language); null for other actions",
    )


# --- who may read a book: the one rule ---------------------------------------------------
#
# Evaluated by access's `/v1/decisions` over its own tables and by delivery's
# local check over the read model it keeps from events, so the two can never
# disagree about the same facts (tests/platform/test_book_read_rule.py walks the table).

# From this role up, every published book may be read without an entitlement.
READ_ANY_PUBLISHED = Role.BOOK_MANAGER


@dataclass(frozen=True)
class BookFacts:
    """What the rule needs to know about a book."""

    published: bool
    access: str  # "free" or "entitled"


def needs_entitlement(role: Role | None, book: BookFacts | None) -> bool:
    """Whether the answer depends on the reader's entitlements (else they need no look-up)."""
    return (
        role is not None
        and book is not None
        and book.published
        and book.access != "free"
        and not role.at_least(READ_ANY_PUBLISHED)
    )


def decide_book_read(
    role: Role | None, book: BookFacts | None, *, entitled: bool | Callable[[], bool]
) -> Decision:
    """May a reader of `role` (None: no such account) read `book` (None: unknown)?

    `entitled` is whether they hold a live entitlement to it, or how to find out
    from facts already in hand: called only where `needs_entitlement` says the
    answer depends on it, so a caller with the facts in memory decides in one call.
    A caller that must ask a database first asks `needs_entitlement` itself.
    """
    if role is None:
        return Decision(allow=False, reason="unknown user")
    if book is None or not book.published:
        return Decision(allow=False, reason="book not published")
    if book.access == "free":
        return Decision(allow=True, reason="free book")
    if role.at_least(READ_ANY_PUBLISHED):
        return Decision(allow=True, reason=f"role {role.value}")
    if entitled() if callable(entitled) else entitled:
        return Decision(allow=True, reason="entitled")
    return Decision(allow=False, reason="no entitlement")
