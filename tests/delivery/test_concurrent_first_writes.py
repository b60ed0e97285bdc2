"""Concurrent first writes of one row never give a 500.

Each of these is a row that the first request creates and later ones find: two
requests checking "is it there?" at the same moment both see nothing, and the
database's constraint refuses one insert. Reading progress is an upsert (every
report succeeds, one row); an account per email and one active grant per book
are first-write-wins (one 201, every other a 409 problem).
"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select

from services.access.models import Entitlement, User
from services.delivery.models import ReadingProgress
from shared.contracts.roles import Role
from tests.harness.access import AccessHarness
from tests.harness.delivery import DeliveryHarness
from tests.support import assert_problem

WRITERS = 50


async def test_fifty_first_progress_reports_at_once_all_succeed_into_one_row(
    access: AccessHarness, delivery: DeliveryHarness
) -> None:
    reader = await access.account(Role.LEARNER)
    book = uuid.uuid4()
    await delivery.put_published(book, f"books/{book}/1.pdf", "v1")
    responses = await asyncio.gather(
        *(
            delivery.http.put(
                f"/v1/reading/{book}/progress",
                json={"page": 1 + i % 7, "total_pages": 10},
                headers=reader.headers,
            )
            for i in range(WRITERS)
        )
    )
    assert sorted({r.status_code for r in responses}) == [200], [r.text for r in responses]
    async with delivery.resources.session_factory() as session:
        rows = (
            await session.scalars(
                select(ReadingProgress).where(
                    ReadingProgress.user_id == reader.id, ReadingProgress.book_id == book
                )
            )
        ).all()
    assert len(rows) == 1
    assert rows[0].page == 7  # the furthest page reported, whatever the order


async def test_fifty_grants_of_one_book_at_once_make_one_entitlement(
    access: AccessHarness,
) -> None:
    admin = await access.account(Role.CONTENT_ADMIN)
    learner = await access.account(Role.LEARNER)
    book = await access.put_book(published=True)
    responses = await asyncio.gather(
        *(
            access.http.post(
                "/v1/entitlements",
                json={"user_id": str(learner.id), "book_id": str(book), "source": "purchase"},
                headers=admin.headers,
            )
            for _ in range(WRITERS)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (WRITERS - 1), [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 409):
        assert_problem(refused, 409)
    async with access.resources.session_factory() as session:
        active = await session.scalar(
            select(func.count())
            .select_from(Entitlement)
            .where(Entitlement.user_id == learner.id, Entitlement.revoked_at.is_(None))
        )
    assert active == 1


async def test_registrations_of_one_email_at_once_make_one_account(access: AccessHarness) -> None:
    email = f"race-{uuid.uuid4().hex[:10]}@example.org"
    responses = await asyncio.gather(*(access.register(email=email) for _ in range(20)))
    # Every one gets the answer a new address gets (#37 F14: the losers were 409s,
    # which say the address is taken); one account is made.
    statuses = [r.status_code for r in responses]
    assert statuses == [201] * 20, [r.text for r in responses if r.status_code != 201]
    async with access.resources.session_factory() as session:
        accounts = await session.scalar(
            select(func.count()).select_from(User).where(User.email == email)
        )
        made = await session.scalar(select(User.id).where(User.email == email))
    assert accounts == 1
    announced = [e for e in await access.outbox("user.registered") if e.subject == str(made)]
    assert len(announced) == 1
