"""Races that row locks settle on PostgreSQL, run on the embedded run's SQLite too.

SQLite ignores `FOR UPDATE`; there, every transaction takes the database's write
lock when it begins (shared/clients/db.py), so the second of two racing requests sees
what the first wrote. Each test runs on both databases.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from services.access.models import User
from shared.contracts.roles import Role
from tests.harness.access import AccessHarness, running_access_harness
from tests.harness.content import ContentHarness
from tests.support import assert_problem, unique_schema


@pytest.fixture
async def either(either_database_url: str, moto_url: str) -> AsyncIterator[AccessHarness]:
    url = either_database_url
    async with running_access_harness(
        url, moto_url, database_schema=unique_schema("races")
    ) as harness:
        yield harness


async def test_two_admins_demoting_each_other_leave_one_admin(either: AccessHarness) -> None:
    for _ in range(5):  # a race: try it several times
        first, second = await either.account(Role.ADMIN), await either.account(Role.ADMIN)
        async with either.resources.session_factory() as session:
            others = (
                await session.scalars(
                    select(User).where(User.role == "ADMIN", User.id.not_in([first.id, second.id]))
                )
            ).all()
            for other in others:  # exactly two admins in the race
                other.role = "LEARNER"
            await session.commit()
        answers = await asyncio.gather(
            either.http.put(
                f"/v1/users/{second.id}/role", headers=first.headers, json={"role": "LEARNER"}
            ),
            either.http.put(
                f"/v1/users/{first.id}/role", headers=second.headers, json={"role": "LEARNER"}
            ),
        )
        statuses = sorted(a.status_code for a in answers)
        texts = [a.text for a in answers]
        assert statuses[0] == 200, texts
        assert statuses[1] in (403, 409), texts
        async with either.resources.session_factory() as session:
            admins = (await session.scalars(select(User.id).where(User.role == "ADMIN"))).all()
        assert len(admins) == 1


@pytest.fixture(params=["postgresql", "sqlite"])
async def rereading_keys(
    request: pytest.FixtureRequest, database_url: str, moto_url: str, tmp_path: Path
) -> AsyncIterator[AccessHarness]:
    """Access re-reading its signing keys on every token it issues."""
    url = (
        database_url
        if request.param == "postgresql"
        else f"sqlite+aiosqlite:///{tmp_path / 'access.sqlite3'}"
    )
    async with running_access_harness(
        url, moto_url, database_schema=unique_schema("keys"), signing_key_refresh_seconds=0
    ) as harness:
        yield harness


async def test_sign_ins_that_reread_the_signing_keys_do_not_wait_on_themselves(
    rereading_keys: AccessHarness,
) -> None:
    # A sign-in issues its tokens inside its transaction; the keys' re-read used to
    # open a second one, which on SQLite waited 30 s for the first (its own
    # request) and failed: every sign-in after the first 10 s of `stories up`.
    registered = await rereading_keys.register()
    assert registered.status_code == 201, registered.text
    email = registered.json()["email"]
    for _ in range(3):
        signed_in = await rereading_keys.login(email, timeout=10)
        assert signed_in.status_code == 200, signed_in.text
    refreshed = await rereading_keys.http.post(
        "/v1/auth/refresh", json={"refresh_token": signed_in.json()["refresh_token"]}, timeout=10
    )
    assert refreshed.status_code == 200, refreshed.text


async def test_two_claims_with_one_version_take_it_once(content_on_both: ContentHarness) -> None:
    author = await content_on_both.account(Role.VOLUNTEER)
    reviewers = [await content_on_both.account(Role.STORY_MANAGER) for _ in range(2)]
    for _ in range(3):
        submitted = await content_on_both.submitted(author)
        answers = await asyncio.gather(
            *(
                content_on_both.http.post(
                    f"/v1/submissions/{submitted['id']}/claim",
                    headers={**r.headers, "If-Match": f'"{submitted["version"]}"'},
                )
                for r in reviewers
            )
        )
        assert sorted(a.status_code for a in answers) == [200, 412], [a.text for a in answers]


async def test_approve_and_reject_at_once_decide_once(content_on_both: ContentHarness) -> None:
    author = await content_on_both.account(Role.VOLUNTEER)
    first = await content_on_both.account(Role.STORY_MANAGER)
    second = await content_on_both.account(Role.STORY_MANAGER)
    for _ in range(3):
        submitted = await content_on_both.submitted(author)
        answers = await asyncio.gather(
            content_on_both.review(first, submitted, "approve"),
            content_on_both.review(second, submitted, "reject", "Not for us."),
        )
        assert sorted(a.status_code for a in answers) == [200, 412], [a.text for a in answers]


async def test_sign_ups_of_one_address_at_once_make_one_account_and_one_answer(
    either: AccessHarness,
) -> None:
    """#37 F14: every sign-up for an address answers as a new one; the ones that lose
    the race to write it (a savepoint, on both databases) too, not with a 409."""
    email = f"race-{uuid.uuid4().hex[:10]}@example.org"
    answers = await asyncio.gather(*(either.register(email=email) for _ in range(8)))
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
    async with either.resources.session_factory() as session:
        accounts = (await session.scalars(select(User.id).where(User.email == email))).all()
    assert len(accounts) == 1
    assert (await either.login(email)).status_code == 200


async def test_exports_asked_at_once_start_one_and_tell_the_others_why(
    either: AccessHarness,
) -> None:
    """#41: the same account's export asked several times at once, by its owner and by
    an ADMIN: one starts (202) and every other is a 409 naming it. (No other
    service runs here, so no part arrives and the export stays `gathering`.)"""
    learner, admin = await either.account(Role.LEARNER), await either.account(Role.ADMIN)
    answers = await asyncio.gather(
        *(either.http.post("/v1/users/me/export", headers=learner.headers) for _ in range(3)),
        *(
            either.http.post(f"/v1/users/{learner.id}/export", headers=admin.headers)
            for _ in range(2)
        ),
    )
    texts = [a.text for a in answers]
    assert sorted(a.status_code for a in answers) == [202, 409, 409, 409, 409], texts
    started = next(a.json() for a in answers if a.status_code == 202)
    for refused in (a for a in answers if a.status_code == 409):
        problem = assert_problem(refused, 409, "export-in-progress")
        assert problem["export_id"] == started["id"], problem
    shown = await either.http.get("/v1/users/me/export", headers=learner.headers)
    assert shown.json()["id"] == started["id"]
    assert shown.json()["status"] == "gathering"
