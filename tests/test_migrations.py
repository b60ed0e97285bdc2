"""Every service's migrations apply on PostgreSQL into its own schema, are
idempotent, and match the models exactly."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from sqlalchemy import text

from shared.db import create_engine, drop_schema
from shared.migrations import alembic_config, upgrade
from stories.registry import SERVICES
from tests.support import unique_schema

TABLES_IN_SCHEMA = "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"


@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_migrations_build_the_schema_and_match_the_models(
    database_url: str, name: str
) -> None:
    service = SERVICES[name]
    schema = unique_schema(name)
    try:
        await upgrade(service.migrations, database_url, schema)
        await upgrade(service.migrations, database_url, schema)  # a second run changes nothing
        # `alembic check` fails if the models hold anything the migrations do not.
        config = alembic_config(service.migrations, database_url, schema)
        await asyncio.to_thread(command.check, config)
        engine = create_engine(database_url, schema=schema)
        async with engine.connect() as connection:
            tables = set(
                (
                    await connection.execute(
                        text(TABLES_IN_SCHEMA),
                        {"s": schema},
                    )
                ).scalars()
            )
        await engine.dispose()
        assert {"outbox", "inbox", "alembic_version"} <= tables
    finally:
        await drop_schema(database_url, schema)
