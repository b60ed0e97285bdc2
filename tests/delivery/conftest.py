"""The delivery service's tests: signed links (S3 and CloudFront), reading
progress, its read model and its degraded modes (the `access`, `content` and
`delivery` harnesses come from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.access.main import SERVICE as ACCESS
from services.content.main import SERVICE as CONTENT
from services.delivery.main import SERVICE as DELIVERY
from tests.harness import running_workers
from tests.harness.access import AccessHarness
from tests.harness.content import ContentHarness
from tests.harness.delivery import DeliveryHarness


@pytest.fixture(scope="module")
async def workers(
    access: AccessHarness, content: ContentHarness, delivery: DeliveryHarness
) -> AsyncIterator[None]:
    """The relays and consumers a publication needs to reach delivery and access."""
    async with running_workers((CONTENT, content), (ACCESS, access), (DELIVERY, delivery)):
        yield
