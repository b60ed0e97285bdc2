"""Alembic, once for all services: each service's `migrations/env.py` calls
`run_migrations_from_env` with its metadata; `upgrade` runs them from code.

Each service migrates its own schema on PostgreSQL (created if missing, under
an advisory lock so replicas starting together do not race) or its own SQLite
file in the embedded run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from shared.bus import inbox, outbox
from shared.clients.db import PlatformTables, create_engine, is_postgres
from shared.service import idempotency

# Importing the modules that declare the platform tables registers them.
PLATFORM_TABLE_MODULES = (idempotency, inbox, outbox)


def alembic_config(migrations: Path, database_url: str, schema: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    # Dated file names, so a directory listing reads as a history.
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["schema"] = schema
    return config


def upgrade_sync(migrations: Path, database_url: str, schema: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(migrations, database_url, schema), revision)


async def upgrade(migrations: Path, database_url: str, schema: str, revision: str = "head") -> None:
    # Alembic drives its own event loop; give it a thread so callers may be async.
    await asyncio.to_thread(upgrade_sync, migrations, database_url, schema, revision)


def run_migrations_from_env(
    service_metadata: MetaData,
    *,
    platform_tables: frozenset[str],
    unmodelled_indexes: frozenset[str] = frozenset(),
) -> None:
    """The body of every service's env.py.

    `platform_tables` names the shared tables this service uses (its
    ServiceDefinition knows: an outbox if it produces, an inbox if it consumes,
    idempotency keys if an endpoint takes them); the others are none of its
    business, and `alembic check` does not expect them. `unmodelled_indexes`
    names indexes a migration creates by hand for one backend only (PostgreSQL
    expression indexes, say); the model comparison leaves them alone.
    """
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    schema = config.attributes["schema"]
    target = [service_metadata, PlatformTables.metadata]
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    unused = frozenset(PlatformTables.metadata.tables) - platform_tables
    asyncio.run(_run_online(url, schema, target, unused, unmodelled_indexes))


async def _run_online(
    url: str,
    schema: str,
    target: list[MetaData],
    unused_tables: frozenset[str],
    unmodelled_indexes: frozenset[str],
) -> None:
    engine = create_engine(url, schema=schema, pool_size=1)
    try:
        if is_postgres(url):
            async with engine.begin() as connection:
                await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        async with engine.connect() as connection:
            await connection.run_sync(
                _run_with_connection,
                target,
                schema,
                is_postgres(url),
                unused_tables,
                unmodelled_indexes,
            )
    finally:
        await engine.dispose()


def _run_with_connection(
    connection: Connection,
    target: list[MetaData],
    schema: str,
    postgres: bool,
    unused_tables: frozenset[str],
    unmodelled_indexes: frozenset[str],
) -> None:
    def include_object(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        if table in unused_tables:
            return False
        return not (type_ == "index" and reflected and name in unmodelled_indexes)

    context.configure(
        connection=connection,
        target_metadata=target,
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        if postgres:
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
        context.run_migrations()


def create_platform_tables(*names: str) -> None:
    """Create shared tables (by name) in the migrating service's schema."""
    tables = [PlatformTables.metadata.tables[name] for name in names]
    PlatformTables.metadata.create_all(op.get_bind(), tables=tables)


def drop_platform_tables(*names: str) -> None:
    tables = [PlatformTables.metadata.tables[name] for name in names]
    PlatformTables.metadata.drop_all(op.get_bind(), tables=tables)
