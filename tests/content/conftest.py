"""The content service's tests: submissions and their review, books, publishing
and the public catalog (the `access` and `content` harnesses come from
tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.access.main import SERVICE as ACCESS
from services.content.main import SERVICE as CONTENT
from tests.harness import running_workers
from tests.harness.access import AccessHarness
from tests.harness.content import ContentHarness


@pytest.fixture(scope="module")
async def workers(access: AccessHarness, content: ContentHarness) -> AsyncIterator[None]:
    """Content's outbox relay and access's consumer, as `stories worker` runs them."""
    async with running_workers((CONTENT, content), (ACCESS, access)):
        yield
