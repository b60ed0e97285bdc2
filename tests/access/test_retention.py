"""#41: access's retention job removes what is past its time and nothing else:
expired sessions issued more than 30 days ago and audit entries older than a year.
Old and new rows are planted side by side in the real database; the worker's job
(running as `stories worker` runs it) takes only the old."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.access.main import SERVICE as ACCESS
from services.access.models import AuditEntry, RefreshToken
from services.access.retention import remove_expired
from shared.contracts.roles import Role
from tests.harness import running_workers
from tests.harness.access import AccessHarness, running_access_harness


@pytest.fixture(scope="module")
async def access(database_url: str, moto_url: str) -> AsyncIterator[AccessHarness]:
    async with running_access_harness(
        database_url, moto_url, retention_check_seconds=0.2
    ) as harness:
        yield harness


def token(user_id: uuid.UUID, issued_days_ago: float, valid_days: float) -> RefreshToken:
    issued = datetime.now(UTC) - timedelta(days=issued_days_ago)
    return RefreshToken(
        id=uuid.uuid4(),
        family_id=uuid.uuid4(),
        user_id=user_id,
        secret_hash="0" * 64,
        issued_at=issued,
        expires_at=issued + timedelta(days=valid_days),
    )


def entry(days_ago: float) -> AuditEntry:
    return AuditEntry(
        id=uuid.uuid4(),
        actor_id=None,
        action="test.retention",
        subject_type="user",
        subject_id=uuid.uuid4(),
        before=None,
        after=None,
        at=datetime.now(UTC) - timedelta(days=days_ago),
    )


async def test_the_worker_removes_old_sessions_and_audit_entries_and_nothing_else(
    access: AccessHarness,
) -> None:
    learner = await access.account(Role.LEARNER)
    old_sessions = [token(learner.id, 31, 30), token(learner.id, 400, 30)]
    # Issued long ago but still valid (a longer TTL once): never removed.
    kept_sessions = [token(learner.id, 29, 30), token(learner.id, 40, 60)]
    old_entries, kept_entries = [entry(366), entry(900)], [entry(364), entry(0)]
    async with access.resources.session_factory() as session:
        session.add_all([*old_sessions, *kept_sessions, *old_entries, *kept_entries])
        await session.commit()

    async with running_workers((ACCESS, access)):
        for _ in range(100):
            async with access.resources.session_factory() as session:
                left = set(await session.scalars(select(RefreshToken.id))) | set(
                    await session.scalars(select(AuditEntry.id))
                )
            if not left & ({r.id for r in old_sessions} | {e.id for e in old_entries}):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the retention job never removed the old rows")
    assert {r.id for r in kept_sessions} | {e.id for e in kept_entries} <= left
    # The learner's own sign-in (made by the harness just now) is still good.
    refreshed = await access.http.post(
        "/v1/auth/refresh", json={"refresh_token": learner.refresh_token}
    )
    assert refreshed.status_code == 200


async def test_each_pass_removes_a_bounded_batch(access: AccessHarness) -> None:
    learner = await access.account(Role.LEARNER)
    async with access.resources.session_factory() as session:
        session.add_all([token(learner.id, 60, 30) for _ in range(3)])
        await session.commit()
        removed = await remove_expired(
            session,
            access.settings.model_copy(update={"session_retention_days": 30}),
            datetime.now(UTC),
        )
        await session.commit()
    assert removed["sessions"] >= 3
    assert set(removed) == {"sessions", "audit_entries"}
