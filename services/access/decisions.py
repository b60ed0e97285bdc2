"""Decisions: the internal answer to "may this user do this", cached and emptied
whenever a role or an entitlement changes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from services.access.accounts import AccountService
from services.access.models import CatalogBook, User
from shared.contracts.clock import now_utc
from shared.contracts.decisions import (
    READ_ANY_PUBLISHED,
    Action,
    BookFacts,
    Decision,
    DecisionRequest,
    decide_book_read,
    needs_entitlement,
)
from shared.contracts.errors import Unprocessable
from shared.contracts.roles import Role
from shared.http.auth import Principal

# The least role each action needs; book:read has rules of its own.
ACTION_MINIMUM_ROLE = {
    Action.SUBMISSION_CREATE: Role.VOLUNTEER,
    Action.SUBMISSION_REVIEW: Role.STORY_MANAGER,
    Action.BOOK_CREATE: Role.BOOK_MANAGER,
    Action.BOOK_EDIT: Role.BOOK_MANAGER,
    Action.BOOK_PUBLISH: Role.CONTENT_ADMIN,
    Action.ENTITLEMENT_GRANT: Role.TEACHER,
    Action.METRICS_READ: Role.CONTENT_ADMIN,
    Action.USER_MANAGE: Role.ADMIN,
}


class DecisionFacts(Protocol):
    """What a decision reads: the account's stored role, the book as access knows
    it, and the account's live grants (AccessRepository; a fake in unit tests)."""

    async def user(self, user_id: uuid.UUID) -> User | None: ...

    async def book(self, book_id: uuid.UUID) -> CatalogBook | None: ...

    async def has_live_entitlement(
        self, user_id: uuid.UUID, book_id: uuid.UUID, now: datetime
    ) -> bool: ...


async def decide_from_facts(
    facts: DecisionFacts, request: DecisionRequest, now: datetime
) -> Decision:
    """May this user do this, from the stored facts alone (no cache): the role the
    account holds now, and for book:read the platform's one rule over the book
    and the account's live grants."""
    user = await facts.user(request.user_id)
    if user is None:
        return Decision(allow=False, reason="unknown user")
    role = Role(user.role)
    if request.action is not Action.BOOK_READ:
        minimum = ACTION_MINIMUM_ROLE[request.action]
        if role.at_least(minimum) and request.action is Action.SUBMISSION_REVIEW:
            # Cached with the decision and emptied with it when the languages change.
            languages = tuple(user.review_languages or ())
            return Decision(allow=True, reason=f"role {role.value}", languages=languages)
        if role.at_least(minimum):
            return Decision(allow=True, reason=f"role {role.value}")
        return Decision(allow=False, reason=f"needs {minimum.value} or higher")
    if request.resource_id is None:
        raise Unprocessable("book:read needs the book's id as resource_id.")
    row = await facts.book(request.resource_id)
    book = BookFacts(published=row.published, access=row.access) if row else None
    entitled = needs_entitlement(role, book) and await facts.has_live_entitlement(
        user.id, request.resource_id, now
    )
    return decide_book_read(role, book, entitled=entitled)


@dataclass
class DecisionService:
    """May this user do this: the platform's rules over the stored role and grants."""

    accounts: AccountService

    async def decide(self, request: DecisionRequest) -> Decision:
        return await self.accounts.decisions.get_or_decide(
            request, lambda: self._decide_now(request)
        )

    async def _decide_now(self, request: DecisionRequest) -> Decision:
        return await decide_from_facts(self.accounts.repository, request, now_utc())

    async def readable_books(
        self, principal: Principal, limit: int
    ) -> tuple[list[tuple[CatalogBook, str]], dict[uuid.UUID, datetime | None]]:
        """The books with why they are readable, the class-assigned ones first (the
        soonest due first), and book -> due date of those assigned."""
        user = await self.accounts.current_user(principal)
        assigned = await self.accounts.repository.assigned_to(user.id)
        books = await self.accounts.repository.readable_books(
            user.id,
            now_utc(),
            every_published=Role(user.role).at_least(READ_ANY_PUBLISHED),
            limit=limit,
            first=list(assigned),
        )
        far = datetime.max.replace(tzinfo=UTC)
        books.sort(
            key=lambda found: (
                found[0].book_id not in assigned,
                assigned.get(found[0].book_id) or far,
            )
        )  # stable: the rest keep their title order
        return books, assigned
