"""The metrics service's tests: a scripted stream of platform events through SQS
into its worker, then every figure, who may see it, and the dashboard (the
`access` and `metrics` harnesses come from tests/conftest.py)."""

from __future__ import annotations

import pytest

from shared.contracts.roles import Role
from tests.harness.access import AccessHarness, Account


@pytest.fixture(scope="module")
async def people(access: AccessHarness) -> dict[str, Account]:
    """One account per role the figures tell apart, by role name."""
    return {
        role.value: await access.account(role)
        for role in (Role.CONTENT_ADMIN, Role.TEACHER, Role.LEARNER, Role.VOLUNTEER)
    }
