"""The access service's tests: accounts, tokens, roles, entitlements, decisions,
its fast path and its read model of books (the `access` harness comes from
tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.access.main import SERVICE as ACCESS
from tests.harness import running_workers
from tests.harness.access import AccessHarness


@pytest.fixture(scope="module")
async def worker(access: AccessHarness) -> AsyncIterator[None]:
    """Access's relay and consumer: its read model learns of books from events."""
    async with running_workers((ACCESS, access)):
        yield
