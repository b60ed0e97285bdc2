"""A running delivery service for tests, beside running access and content services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from services.delivery.links import BOOKS_CHANNEL, READERS_CHANNEL
from services.delivery.main import SERVICE
from services.delivery.main import SERVICE as DELIVERY
from services.delivery.models import PublishedBook, Reader, ReaderEntitlement
from services.delivery.settings import DeliverySettings
from shared.clients.db import drop_schema
from shared.contracts.envelope import Envelope
from shared.resources import Resources, open_resources
from shared.service.migrations import upgrade
from tests.conftest import make_settings
from tests.harness.access import AccessHarness
from tests.support import ThreadedServer, outbox_events


def delivery_settings(access: AccessHarness, **overrides: Any) -> DeliverySettings:
    values: dict[str, Any] = {
        "resource_prefix": access.settings.resource_prefix,
        "access_url": access.url,
        "jwks_url": f"{access.url}/.well-known/jwks.json",
    }
    values.update(overrides)
    settings = make_settings(
        DeliverySettings,
        database_url=access.settings.database_url,
        moto_url=str(access.settings.aws_endpoint_url),
        **values,
    )
    assert isinstance(settings, DeliverySettings)
    return settings


@dataclass
class DeliveryHarness:
    url: str
    settings: DeliverySettings
    resources: Resources
    http: httpx.AsyncClient
    app: FastAPI

    async def outbox(self, event_type: str) -> list[Envelope]:
        return await outbox_events(self.resources.session_factory, event_type)

    async def put_published(
        self, book_id: Any, key: str, version: str = "null", access: str = "free"
    ) -> None:
        """A published book as content's event would leave it (test setup)."""
        async with self.resources.session_factory() as session:
            session.add(
                PublishedBook(
                    book_id=book_id,
                    published=True,
                    object_key=key,
                    object_version=version,
                    access=access,
                    state_changed_at=datetime.now(UTC),
                )
            )
            await session.commit()
        await self.resources.bus.publish(BOOKS_CHANNEL, str(book_id))

    async def put_reader(self, user_id: Any, role: str, entitled_to: tuple[Any, ...] = ()) -> None:
        """A reader as access's events would leave delivery's read model (test setup)."""
        async with self.resources.session_factory() as session:
            await session.merge(
                Reader(user_id=user_id, role=role, role_changed_at=datetime.now(UTC))
            )
            for book_id in entitled_to:
                session.add(
                    ReaderEntitlement(
                        entitlement_id=uuid.uuid4(),
                        user_id=user_id,
                        book_id=book_id,
                        expires_at=None,
                        revoked=False,
                    )
                )
            await session.commit()
        await self.resources.bus.publish(READERS_CHANNEL, str(user_id))


async def start_delivery(
    stack: AsyncExitStack, settings: DeliverySettings, port: int | None = None
) -> DeliveryHarness:
    resources = await open_resources(settings, stack)
    app = SERVICE.create_app(settings)
    server = stack.enter_context(ThreadedServer(app, port))
    http = await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, timeout=20))
    return DeliveryHarness(server.url, settings, resources, http, app)


@pytest.fixture(scope="module")
async def delivery(access: AccessHarness) -> AsyncIterator[DeliveryHarness]:
    settings = delivery_settings(access)
    await upgrade(DELIVERY.migrations, settings.database_url, settings.database_schema)
    try:
        async with AsyncExitStack() as stack:
            yield await start_delivery(stack, settings, urlsplit(access.delivery_url).port)
    finally:
        await drop_schema(settings.database_url, settings.database_schema)
