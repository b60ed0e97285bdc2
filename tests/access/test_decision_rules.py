"""Access's decision rules as unit tests over an in-memory repository: no
PostgreSQL, no Redis, milliseconds. The same rules are tested over real HTTP
and PostgreSQL in test_access.py and test_access_roles.py; these say, cell by
cell, what each answer is, so a rule change is seen at once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from services.access.decisions import decide_from_facts
from services.access.models import CatalogBook, User
from shared.contracts.decisions import Action, DecisionRequest
from shared.contracts.errors import Unprocessable
from shared.contracts.roles import Role

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@dataclass
class InMemoryFacts:
    """What AccessRepository answers a decision with, held in dicts."""

    users: dict[uuid.UUID, User] = field(default_factory=dict)
    books: dict[uuid.UUID, CatalogBook] = field(default_factory=dict)
    # (user, book) -> when the grant ends (None: never)
    grants: dict[tuple[uuid.UUID, uuid.UUID], datetime | None] = field(default_factory=dict)

    async def user(self, user_id: uuid.UUID) -> User | None:
        return self.users.get(user_id)

    async def book(self, book_id: uuid.UUID) -> CatalogBook | None:
        return self.books.get(book_id)

    async def has_live_entitlement(
        self, user_id: uuid.UUID, book_id: uuid.UUID, now: datetime
    ) -> bool:
        if (user_id, book_id) not in self.grants:
            return False
        ends = self.grants[(user_id, book_id)]
        return ends is None or ends > now

    def account(self, role: Role) -> uuid.UUID:
        user = User(id=uuid.uuid4(), role=role.value)
        self.users[user.id] = user
        return user.id

    def catalog_book(self, *, published: bool, access: str) -> uuid.UUID:
        book = CatalogBook(book_id=uuid.uuid4(), published=published, access=access)
        self.books[book.book_id] = book
        return book.book_id


async def allowed(
    facts: InMemoryFacts, user: uuid.UUID, action: Action, book: uuid.UUID | None = None
) -> bool:
    request = DecisionRequest(user_id=user, action=action, resource_id=book)
    return (await decide_from_facts(facts, request, NOW)).allow


# The least role of each action but book:read, written out (not read from the code).
LEAST_ROLE = {
    Action.SUBMISSION_CREATE: Role.VOLUNTEER,
    Action.SUBMISSION_REVIEW: Role.STORY_MANAGER,
    Action.BOOK_CREATE: Role.BOOK_MANAGER,
    Action.BOOK_EDIT: Role.BOOK_MANAGER,
    Action.BOOK_PUBLISH: Role.CONTENT_ADMIN,
    Action.ENTITLEMENT_GRANT: Role.TEACHER,
    Action.METRICS_READ: Role.CONTENT_ADMIN,
    Action.USER_MANAGE: Role.ADMIN,
}
ORDER = list(Role)


@pytest.mark.parametrize("action", sorted(LEAST_ROLE))
async def test_each_action_needs_its_least_role_and_nothing_less(action: Action) -> None:
    facts = InMemoryFacts()
    least = ORDER.index(LEAST_ROLE[action])
    for rank, role in enumerate(ORDER):
        assert await allowed(facts, facts.account(role), action) == (rank >= least), role


async def test_an_unknown_account_may_do_nothing() -> None:
    facts = InMemoryFacts()
    book = facts.catalog_book(published=True, access="free")
    assert not await allowed(facts, uuid.uuid4(), Action.BOOK_READ, book)
    assert not await allowed(facts, uuid.uuid4(), Action.SUBMISSION_CREATE)


async def test_reading_a_book() -> None:
    facts = InMemoryFacts()
    free = facts.catalog_book(published=True, access="free")
    paid = facts.catalog_book(published=True, access="entitled")
    draft = facts.catalog_book(published=False, access="free")
    unknown = uuid.uuid4()
    learner, teacher = facts.account(Role.LEARNER), facts.account(Role.TEACHER)
    manager, admin = facts.account(Role.BOOK_MANAGER), facts.account(Role.ADMIN)
    read = Action.BOOK_READ
    # A free published book: every account.
    for user in (learner, teacher, manager, admin):
        assert await allowed(facts, user, read, free)
    # Nothing unpublished or unknown, whoever asks.
    for user in (learner, manager, admin):
        assert not await allowed(facts, user, read, draft)
        assert not await allowed(facts, user, read, unknown)
    # An entitled book: book managers and up read any; below, only with a live grant.
    assert await allowed(facts, manager, read, paid)
    assert await allowed(facts, admin, read, paid)
    assert not await allowed(facts, learner, read, paid)
    assert not await allowed(facts, teacher, read, paid)
    facts.grants[(learner, paid)] = None
    assert await allowed(facts, learner, read, paid)
    facts.grants[(teacher, paid)] = NOW - timedelta(seconds=1)  # ended a second ago
    assert not await allowed(facts, teacher, read, paid)
    facts.grants[(teacher, paid)] = NOW + timedelta(days=1)
    assert await allowed(facts, teacher, read, paid)


async def test_the_role_held_now_decides_not_an_older_one() -> None:
    facts = InMemoryFacts()
    user = facts.account(Role.CONTENT_ADMIN)
    assert await allowed(facts, user, Action.BOOK_PUBLISH)
    facts.users[user].role = Role.LEARNER.value  # demoted
    assert not await allowed(facts, user, Action.BOOK_PUBLISH)


async def test_reading_needs_the_book_named() -> None:
    facts = InMemoryFacts()
    with pytest.raises(Unprocessable):
        await allowed(facts, facts.account(Role.LEARNER), Action.BOOK_READ)
