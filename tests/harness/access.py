"""A running access service for tests: real HTTP, PostgreSQL, Redis and moto."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from services.access.main import SERVICE
from services.access.main import SERVICE as ACCESS
from services.access.models import CatalogBook, User
from services.access.settings import AccessSettings
from shared.bus.provision import bootstrap
from shared.clients.db import drop_schema
from shared.contracts.envelope import Envelope
from shared.contracts.events import EventData
from shared.contracts.roles import Role
from shared.resources import Resources, open_resources
from shared.service.migrations import upgrade
from stories.emulator import free_port
from tests.conftest import make_settings
from tests.support import ThreadedServer, outbox_events

# A slowed address's or account's interval in the tests that wait one out: long
# enough that a request right after a guess, on a loaded CI machine, still falls
# inside it (2 s did not, once), short enough to wait.
SLOWED_SECONDS = 8
PASSWORD = "a sturdy passphrase 42"


def access_settings(database_url: str, moto_url: str, **overrides: Any) -> AccessSettings:
    values: dict[str, Any] = {
        # Cheap hashing keeps the suite fast; a timing test sets the real cost.
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 1024,
        "login_failures_per_ip": 10_000,
        # Every test account signs up from 127.0.0.1; one test checks the real limit.
        "registrations_per_ip": 100_000,
        "service_token_failures_per_ip": 100_000,
        "key_activation_delay_seconds": 0,
        # The class report's metrics service: the `metrics` fixture serves there.
        "metrics_url": f"http://127.0.0.1:{free_port()}",
    }
    values.update(overrides)
    settings = make_settings(AccessSettings, database_url=database_url, moto_url=moto_url, **values)
    assert isinstance(settings, AccessSettings)
    return settings


@contextmanager
def running_access(settings: AccessSettings) -> Iterator[str]:
    with ThreadedServer(
        SERVICE.create_app(settings), trusted_proxies=[str(p) for p in settings.trusted_proxies]
    ) as server:
        yield server.url


@dataclass
class Account:
    id: uuid.UUID
    email: str
    role: Role
    token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class AccessHarness:
    url: str
    settings: AccessSettings
    resources: Resources
    http: httpx.AsyncClient
    # Where this module's `delivery` fixture serves (content's OPDS feeds link there).
    delivery_url: str = field(default_factory=lambda: f"http://127.0.0.1:{free_port()}")

    async def register(
        self, *, email: str | None = None, password: str = PASSWORD
    ) -> httpx.Response:
        email = email or f"{uuid.uuid4().hex[:12]}@example.org"
        return await self.http.post(
            "/v1/auth/register",
            json={
                "email": email,
                "password": password,
                "display_name": "Test person",
                "birth_year": 1990,
            },
        )

    async def login(self, email: str, password: str = PASSWORD, **kw: Any) -> httpx.Response:
        return await self.http.post(
            "/v1/auth/login", json={"email": email, "password": password}, **kw
        )

    async def account(self, role: Role) -> Account:
        """A fresh account with `role` (set directly in the database: test setup)."""
        registered = await self.register()
        assert registered.status_code == 201, registered.text
        user_id = uuid.UUID(registered.json()["id"])
        email = registered.json()["email"]
        async with self.resources.session_factory() as session:
            await session.execute(update(User).where(User.id == user_id).values(role=role.value))
            await session.commit()
        tokens = (await self.login(email)).json()
        return Account(user_id, email, role, tokens["access_token"], tokens["refresh_token"])

    async def class_account(
        self, teacher: Account, display_name: str
    ) -> tuple[dict[str, Any], dict[str, Any], Account]:
        """#19: a new class of `teacher` with one class account, signed in: the class,
        the account as the teacher was told it (username, first password), and the
        child's signed-in Account."""
        made = await self.http.post(
            "/v1/classes", json={"name": "Class of the test"}, headers=teacher.headers
        )
        assert made.status_code == 201, made.text
        school_class = made.json()
        added = await self.http.post(
            f"/v1/classes/{school_class['id']}/learners",
            json={"display_names": [display_name]},
            headers=teacher.headers,
        )
        assert added.status_code == 201, added.text
        [child] = added.json()["learners"]
        signed_in = await self.http.post(
            "/v1/auth/class-login",
            json={
                "code": school_class["join_code"],
                "username": child["username"],
                "password": child["password"],
            },
        )
        assert signed_in.status_code == 200, signed_in.text
        tokens = signed_in.json()
        reader = Account(
            uuid.UUID(child["user_id"]), "", Role.LEARNER, tokens["access_token"],
            tokens["refresh_token"],
        )  # fmt: skip
        return school_class, child, reader

    async def service_token(self, client: str = "delivery") -> dict[str, str]:
        response = await self.http.post(
            "/v1/auth/service-token",
            json={"client_id": client, "client_secret": f"dev-{client}-secret"},
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def put_book(self, *, published: bool, access: str = "entitled") -> uuid.UUID:
        """A book in the read model (as content's events would leave it)."""
        book_id = uuid.uuid4()
        from datetime import UTC, datetime

        async with self.resources.session_factory() as session:
            session.add(
                CatalogBook(
                    book_id=book_id,
                    title=f"Book {book_id.hex[:6]}",
                    language="en",
                    access=access,
                    published=published,
                    state_changed_at=datetime.now(UTC),
                )
            )
            await session.commit()
        await self.resources.decisions.invalidate_all()
        return book_id

    async def publish(self, data: EventData) -> None:
        """An event on its producer's topic, as that service's relay would send it."""
        envelope = Envelope.wrap(data)
        await self.resources.aws.sns.publish(
            TopicArn=await self.resources.events_topic_arn(data.producer),
            Message=envelope.model_dump_json(),
            MessageAttributes={"type": {"DataType": "String", "StringValue": envelope.type}},
        )

    async def knows_published(self, *books: uuid.UUID) -> bool:
        """Whether access's read model has heard that each of these is published."""
        async with self.resources.session_factory() as session:
            found = [await session.get(CatalogBook, book) for book in books]
        return all(book is not None and book.published for book in found)

    async def outbox(self, event_type: str) -> list[Envelope]:
        return await outbox_events(self.resources.session_factory, event_type)


@asynccontextmanager
async def running_access_harness(
    database_url: str, moto_url: str, **overrides: Any
) -> AsyncIterator[AccessHarness]:
    settings = access_settings(database_url, moto_url, **overrides)
    await upgrade(ACCESS.migrations, database_url, settings.database_schema)
    try:
        async with AsyncExitStack() as stack:
            resources = await open_resources(settings, stack)
            aws = resources.aws
            await bootstrap(
                sns=aws.sns,
                sqs=aws.sqs,
                s3=aws.s3,
                names=settings.resource_names,
                region="us-east-1",
            )
            url = stack.enter_context(running_access(settings))
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=20))
            yield AccessHarness(url, settings, resources, http)
    finally:
        await drop_schema(database_url, settings.database_schema)


@pytest.fixture(scope="module")
async def access(database_url: str, moto_url: str) -> AsyncIterator[AccessHarness]:
    async with running_access_harness(database_url, moto_url) as harness:
        yield harness
