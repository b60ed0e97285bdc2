"""Races that row locks settle on PostgreSQL, run on the embedded run's SQLite too.

SQLite ignores `FOR UPDATE`; there, every transaction takes the database's write
lock when it begins (shared/db.py), so the second of two racing requests sees
what the first wrote. Each test runs on both databases.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from services.access.models import User
from shared.roles import Role
from tests.access_fixtures import AccessHarness, running_access_harness
from tests.support import unique_schema


@pytest.fixture(params=["postgresql", "sqlite"])
async def either(
    request: pytest.FixtureRequest, database_url: str, moto_url: str, tmp_path: Path
) -> AsyncIterator[AccessHarness]:
    url = (
        database_url
        if request.param == "postgresql"
        else f"sqlite+aiosqlite:///{tmp_path / 'access.sqlite3'}"
    )
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
