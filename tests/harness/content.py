"""A running content service for tests, beside a running access service:
real HTTP between them (JWKS, service token, decisions), PostgreSQL, Redis, moto."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.content.catalog import CATALOG_CHANNEL
from services.content.main import SERVICE
from services.content.main import SERVICE as CONTENT
from services.content.settings import ContentSettings
from shared.clients.db import drop_schema
from shared.contracts.envelope import Envelope
from shared.contracts.roles import Role
from shared.resources import Resources, open_resources, resources_of
from shared.service.migrations import upgrade
from stories.samples import story_pdf
from tests.conftest import make_settings
from tests.harness.access import AccessHarness, Account
from tests.support import ThreadedServer, outbox_events

# A real PDF: manuscripts are parsed, inspected and rendered at submit.
PDF = story_pdf("The Lion Who Could Not Roar")
MAX_MANUSCRIPT_BYTES = 4096

STORY = {
    "title": "The Lion Who Could Not Roar",
    "summary": "A quiet lion finds another way to be heard.",
    "language": "en",
    "age_min": 4,
    "age_max": 8,
    "category": "animals",
    "reading_level": "early",
}


def content_settings(access: AccessHarness, **overrides: Any) -> ContentSettings:
    values: dict[str, Any] = {
        # Same names as the access stack: the buckets, topics and queues it bootstrapped.
        "resource_prefix": access.settings.resource_prefix,
        "access_url": access.url,
        "jwks_url": f"{access.url}/.well-known/jwks.json",
        "manuscript_max_bytes": MAX_MANUSCRIPT_BYTES,
        "published_assets_url": "https://assets.stories.example",
        "opds_delivery_url": access.delivery_url,
        "opds_access_url": access.url,
        # Where this module's `metrics` fixture serves, if it has one.
        "metrics_url": access.settings.metrics_url,
    }
    values.update(overrides)
    settings = make_settings(
        ContentSettings,
        database_url=values.pop("database_url", access.settings.database_url),
        moto_url=str(access.settings.aws_endpoint_url),
        **values,
    )
    assert isinstance(settings, ContentSettings)
    return settings


@dataclass
class ContentHarness:
    url: str
    settings: ContentSettings
    resources: Resources
    http: httpx.AsyncClient
    access: AccessHarness
    app: FastAPI

    def catalog_cache_ready(self) -> bool:
        """Whether the running app listens for catalog invalidations (so it caches)."""
        resources = resources_of(self.app)
        return resources.bus.listening(CATALOG_CHANNEL)

    async def account(self, role: Role) -> Account:
        return await self.access.account(role)

    async def create(self, author: Account, **changes: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/v1/submissions", json={**STORY, **changes}, headers=author.headers
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def upload(
        self,
        author: Account,
        submission_id: str,
        data: bytes = PDF,
        *,
        content_type: str = "application/pdf",
        filename: str | None = None,
    ) -> httpx.Response:
        ticket = await self.http.post(
            f"/v1/submissions/{submission_id}/upload",
            json={"filename": filename} if filename else {},
            headers=author.headers,
        )
        assert ticket.status_code == 200, ticket.text
        form = ticket.json()
        fields = dict(form["fields"])
        fields["Content-Type"] = content_type
        async with httpx.AsyncClient(timeout=20) as s3:
            return await s3.post(
                form["url"], data=fields, files={"file": ("story.pdf", data, content_type)}
            )

    async def submit(self, author: Account, submission: dict[str, Any]) -> httpx.Response:
        return await self.http.post(
            f"/v1/submissions/{submission['id']}/submit",
            headers={**author.headers, "If-Match": f'"{submission["version"]}"'},
        )

    async def submitted(
        self,
        author: Account,
        *,
        upload_filename: str | None = None,
        pdf: bytes = PDF,
        **changes: Any,
    ) -> dict[str, Any]:
        created = await self.create(author, **changes)
        uploaded = await self.upload(author, created["id"], pdf, filename=upload_filename)
        assert uploaded.status_code in (200, 201, 204), uploaded.text
        response = await self.submit(author, created)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def claim(self, reviewer: Account, submission: dict[str, Any]) -> httpx.Response:
        return await self.http.post(
            f"/v1/submissions/{submission['id']}/claim",
            headers={**reviewer.headers, "If-Match": f'"{submission["version"]}"'},
        )

    async def review(
        self,
        reviewer: Account,
        submission: dict[str, Any],
        decision: str = "approve",
        notes: str | None = None,
        reading_level: str | None = None,
    ) -> httpx.Response:
        """A reviewer's decision, as a reviewer makes it: a SUBMITTED submission is
        claimed first (only its claimant decides it); a refused claim is the answer."""
        if submission.get("status") == "SUBMITTED":
            claimed = await self.claim(reviewer, submission)
            if claimed.status_code != 200:
                return claimed
            submission = claimed.json()
        return await self.http.post(
            f"/v1/submissions/{submission['id']}/review",
            json={"decision": decision, "notes": notes}
            | ({"reading_level": reading_level} if reading_level else {}),
            headers={**reviewer.headers, "If-Match": f'"{submission["version"]}"'},
        )

    async def approved(
        self,
        author: Account,
        reviewer: Account,
        *,
        upload_filename: str | None = None,
        pdf: bytes = PDF,
        **changes: Any,
    ) -> dict[str, Any]:
        submitted = await self.submitted(
            author, upload_filename=upload_filename, pdf=pdf, **changes
        )
        response = await self.review(reviewer, submitted)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def book(
        self, manager: Account, submission: dict[str, Any], access: str = "free"
    ) -> dict[str, Any]:
        response = await self.http.post(
            "/v1/books",
            json={"submission_id": submission["id"], "access": access},
            headers=manager.headers,
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def publish_draft(
        self,
        submission: dict[str, Any],
        *,
        author: Account,
        reviewer: Account,
        admin: Account,
        pdf: bytes = PDF,
    ) -> dict[str, Any]:
        """A draft (original or derived) through upload, submit, review, book, publish."""
        uploaded = await self.upload(author, submission["id"], pdf)
        assert uploaded.status_code in (200, 201, 204), uploaded.text
        submitted = await self.submit(author, submission)
        assert submitted.status_code == 200, submitted.text
        approved = await self.review(reviewer, submitted.json())
        assert approved.status_code == 200, approved.text
        book = await self.book(admin, approved.json())
        published = await self.http.post(f"/v1/books/{book['id']}/publish", headers=admin.headers)
        assert published.status_code == 200, published.text
        body: dict[str, Any] = published.json()
        return body

    async def book_for_readers(
        self,
        access: str = "free",
        *,
        upload_filename: str | None = None,
        pdf: bytes = PDF,
        **changes: Any,
    ) -> dict[str, Any]:
        """A published book (free or entitled), by accounts of its own."""
        author = await self.account(Role.VOLUNTEER)
        reviewer = await self.account(Role.STORY_MANAGER)
        admin = await self.account(Role.CONTENT_ADMIN)
        approved = await self.approved(
            author, reviewer, upload_filename=upload_filename, pdf=pdf, **changes
        )
        book = await self.book(admin, approved, access=access)
        published = await self.http.post(f"/v1/books/{book['id']}/publish", headers=admin.headers)
        assert published.status_code == 200, published.text
        return book

    async def published_book(
        self, *, author: Account, reviewer: Account, admin: Account, **changes: Any
    ) -> dict[str, Any]:
        approved = await self.approved(author, reviewer, **changes)
        book = await self.book(admin, approved)
        response = await self.http.post(f"/v1/books/{book['id']}/publish", headers=admin.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def outbox(self, event_type: str) -> list[Envelope]:
        return await outbox_events(self.resources.session_factory, event_type)


async def start_content(
    stack: AsyncExitStack, access: AccessHarness, settings: ContentSettings
) -> ContentHarness:
    resources = await open_resources(settings, stack)
    app = SERVICE.create_app(settings)
    server = stack.enter_context(ThreadedServer(app))
    http = await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, timeout=20))
    return ContentHarness(server.url, settings, resources, http, access, app)


@pytest.fixture(scope="module")
async def content(access: AccessHarness) -> AsyncIterator[ContentHarness]:
    settings = content_settings(access)
    await upgrade(CONTENT.migrations, settings.database_url, settings.database_schema)
    try:
        async with AsyncExitStack() as stack:
            yield await start_content(stack, access, settings)
    finally:
        await drop_schema(settings.database_url, settings.database_schema)


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
async def content_on_both(
    request: pytest.FixtureRequest, access: AccessHarness, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ContentHarness]:
    """Content on PostgreSQL, then on the embedded run's SQLite: their locks differ
    (SQLite takes its one write lock when a transaction begins; shared/clients/db.py)."""
    overrides = {}
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("content-sqlite")
        overrides["database_url"] = f"sqlite+aiosqlite:///{folder / 'content.sqlite3'}"
    settings = content_settings(access, **overrides)
    await upgrade(CONTENT.migrations, settings.database_url, settings.database_schema)
    try:
        async with AsyncExitStack() as stack:
            yield await start_content(stack, access, settings)
    finally:
        if request.param == "postgresql":
            await drop_schema(settings.database_url, settings.database_schema)


def new_id() -> str:
    return str(uuid.uuid4())
