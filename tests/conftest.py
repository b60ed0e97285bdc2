"""Fixtures for every area: the real PostgreSQL and Redis of this machine, a moto
server process, per-test isolation (a fresh schema and a fresh resource-name
prefix), and the four services' harnesses (`access`, `content`, `delivery`,
`metrics`: one running service each per test module, from tests/harness/).

Tests live by area: access/, content/, delivery/, metrics/ (a service each),
shared/ (the plumbing in shared/), platform/ (the services together, the
embedded run, migrations, infrastructure, faults). Each area's conftest.py
holds the fixtures only its tests use."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from shared.bus.provision import bootstrap
from shared.clients.db import PlatformTables, drop_schema, ensure_database
from shared.resources import Resources, open_resources
from shared.service.logging import configure_logging
from shared.settings import ServiceSettings
from stories.emulator import localstack_process, moto_server_process
from tests.support import (
    TEST_DATABASE_URL,
    TEST_REDIS_URL,
    SampleSettings,
    unique_prefix,
    unique_schema,
)

# The services' harnesses, as fixtures for every area (a delivery test needs
# access and content running too).
pytest_plugins = (
    "tests.harness.access",
    "tests.harness.content",
    "tests.harness.delivery",
    "tests.harness.metrics",
)


def pytest_configure(config: pytest.Config) -> None:
    configure_logging("WARNING", json=False)


# What a test may use and still need no server (`make check` runs those alone):
# pytest's own fixtures. Any other fixture here reaches PostgreSQL, Redis, an AWS
# emulator or a running service; so does a module that names one of these.
NO_SERVER_FIXTURES = frozenset(
    {
        "request", "tmp_path", "tmp_path_factory", "monkeypatch", "capsys", "caplog",
        "recwarn", "event_loop_policy",
        # Autouse, and a no-op in a session of no-server tests alone (below).
        "clean_redis",
    }
)  # fmt: skip
SERVER_WORDS = (
    "TEST_REDIS_URL", "TEST_DATABASE_URL", "BENCH_DATABASE_URL", "create_redis(",
    "moto_server_process", "start_guarded_moto", "running_platform", "ThreadedServer",
    "uvicorn_process", "bench_events", "bench_metrics", "scripts/build-image",
)  # fmt: skip
_names_a_server: dict[str, bool] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a server `server`, from what it asks for: its
    fixtures, its markers, and what its module names. `make check` runs the rest."""
    for item in items:
        path = str(item.path)
        if path not in _names_a_server:
            source = item.path.read_text()
            _names_a_server[path] = any(word in source for word in SERVER_WORDS)
        parametrized = {
            name.strip()
            for marker in item.iter_markers("parametrize")
            for name in (
                marker.args[0].split(",") if isinstance(marker.args[0], str) else marker.args[0]
            )
        }
        fixtures = set(getattr(item, "fixturenames", ())) - NO_SERVER_FIXTURES - parametrized
        marked = any(item.get_closest_marker(m) for m in ("slow", "e2e", "faults"))
        if fixtures or marked or _names_a_server[path]:
            item.add_marker(pytest.mark.server)


@pytest.fixture(scope="session", autouse=True)
async def clean_redis(request: pytest.FixtureRequest) -> None:
    """Start from an empty test Redis: rate limits and deny-lists of earlier runs are gone.
    (Nothing to do in a session of tests that need no server: `make check`.)"""
    if not any(item.get_closest_marker("server") for item in request.session.items):
        return
    client = Redis.from_url(TEST_REDIS_URL)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


# `TEST_AWS=localstack` runs the same tests against LocalStack (host mode, pinned
# 4.13.1 from scripts/ensure-localstack, presigned signatures enforced) instead of
# moto: `make test` does so for the cross-service scenarios (marker `e2e`).
TEST_AWS = os.environ.get("TEST_AWS", "moto")


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """The AWS emulator every test talks to (named for the default, moto)."""
    if TEST_AWS == "localstack":
        with localstack_process() as url:
            yield url
        return
    with moto_server_process() as url:
        yield url


@pytest.fixture(scope="session")
async def database_url() -> str:
    """The test database, created on first use."""
    await ensure_database(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


@pytest.fixture(params=["postgresql", "sqlite"])
async def either_database_url(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> str:
    """Each write path on both databases: the test PostgreSQL, then a SQLite file of
    the test's own (what the embedded run uses)."""
    if request.param == "postgresql":
        return database_url
    return f"sqlite+aiosqlite:///{tmp_path / 'service.sqlite3'}"


def make_settings(
    settings_class: type[ServiceSettings], *, database_url: str, moto_url: str, **overrides: Any
) -> ServiceSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "database_schema": unique_schema(settings_class.service_name),
        "redis_url": TEST_REDIS_URL,
        "aws_endpoint_url": moto_url,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "resource_prefix": unique_prefix(),
        "consumer_wait_seconds": 1,
        "consumer_retry_base_seconds": 0,
        "outbox_poll_seconds": 0.05,
        "log_json": False,
    }
    values.update(overrides)
    return settings_class(**values)


@pytest.fixture
async def settings(database_url: str, moto_url: str) -> AsyncIterator[ServiceSettings]:
    s = make_settings(SampleSettings, database_url=database_url, moto_url=moto_url)
    yield s
    await drop_schema(database_url, s.database_schema)


@pytest.fixture
async def resources(settings: ServiceSettings) -> AsyncIterator[Resources]:
    """Clients against a fresh schema holding the outbox and inbox, and bootstrapped AWS."""
    async with AsyncExitStack() as stack:
        r = await open_resources(settings, stack)
        async with r.engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{settings.database_schema}"'))
            await connection.run_sync(PlatformTables.metadata.create_all)
        await bootstrap(
            sns=r.aws.sns,
            sqs=r.aws.sqs,
            s3=r.aws.s3,
            names=settings.resource_names,
            region=settings.aws_region,
        )
        yield r
