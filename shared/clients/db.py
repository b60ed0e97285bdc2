"""Database engine, metadata conventions and the unit-of-work session.

PostgreSQL (asyncpg) is the real store; each service lives in its own schema,
reached through the connection's `search_path`, so table names stay unqualified
and the same models and migrations run on the SQLite file of the embedded run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

log = structlog.get_logger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps the zone; SQLite hands back naive values, which would
    otherwise leak into comparisons and JSON without their "Z".
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


class PlatformTables(DeclarativeBase):
    """Tables every service carries with the same shape (outbox, inbox, idempotency keys).

    Declared once; each service's schema holds its own copy, created by its
    migrations, and its Alembic environment compares against this metadata
    beside its own.
    """

    metadata = new_metadata()


# Set on a session factory's info so committed events nudge the in-process relay.
WAKE_RELAY_INFO_KEY = "wake_outbox_relay"
EVENTS_RECORDED_INFO_KEY = "outbox_events_recorded"
AFTER_COMMIT_INFO_KEY = "after_commit_actions"


class UnitOfWorkSession(AsyncSession):
    """An AsyncSession that, after committing new outbox events, wakes the relay.

    Without the nudge the relay still finds them on its next poll; with it, an
    event is on its way to SNS within a millisecond of the commit.
    """

    async def commit(self) -> None:
        await super().commit()
        if self.info.pop(EVENTS_RECORDED_INFO_KEY, False):
            wake = self.info.get(WAKE_RELAY_INFO_KEY)
            if wake is not None:
                wake()
        actions: list[Callable[[], Awaitable[None]]] = self.info.pop(AFTER_COMMIT_INFO_KEY, [])
        for action in actions:
            try:
                await action()
            except Exception:  # committed already; a failed nudge only delays a cache
                log.exception("after-commit action failed")

    async def rollback(self) -> None:
        self.info.pop(AFTER_COMMIT_INFO_KEY, None)
        await super().rollback()

    def after_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` once this transaction commits (never if it rolls back)."""
        self.info.setdefault(AFTER_COMMIT_INFO_KEY, []).append(action)


def unit_of_work_session(session: AsyncSession) -> UnitOfWorkSession:
    """A request's session as what it is (so services can use `after_commit`)."""
    assert isinstance(session, UnitOfWorkSession)
    return session


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def upsert(session: AsyncSession, table: Any) -> Any:
    """`INSERT … ON CONFLICT` for the session's database (PostgreSQL, or SQLite in the
    embedded run): both dialects build it the same way, from different classes."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table)


def create_engine(
    url: str, *, schema: str, pool_size: int = 10, pool_timeout: float = 5.0
) -> AsyncEngine:
    if is_postgres(url):
        return create_async_engine(
            url,
            pool_size=pool_size,
            # No overflow: connections opened beyond the pool are closed again on
            # return, so under load each request paid for a new PostgreSQL
            # backend (measured: the reading list's biggest cost at saturation),
            # and every process could double its share of max_connections.
            max_overflow=0,
            pool_timeout=pool_timeout,
            pool_pre_ping=False,
            connect_args={"server_settings": {"search_path": schema}},
        )
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30})
    event.listen(engine.sync_engine, "connect", _tune_sqlite)
    event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # The driver would BEGIN (deferred) on its own; _begin_immediate does it instead.
    dbapi_connection.isolation_level = None
    # WAL lets the embedded run's API, relay and consumer read while one writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    """SQLite ignores `FOR UPDATE`, so every transaction of the embedded run takes
    the database's write lock when it begins: transactions that would race (two
    admins demoting each other, two claims with one If-Match) run one after the
    other and the second sees what the first wrote, as row locks give PostgreSQL.
    (Autocommit connections, for single reads, begin nothing.)"""
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def has_work(session: AsyncSession) -> bool:
    """Whether committing `session` would do anything."""
    return bool(
        session.in_transaction()
        or session.new
        or session.dirty
        or session.deleted
        or AFTER_COMMIT_INFO_KEY in session.info
    )


def create_session_factory(
    engine: AsyncEngine, *, wake_relay: Callable[[], None] | None = None
) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine,
        class_=UnitOfWorkSession,
        expire_on_commit=False,
        info={WAKE_RELAY_INFO_KEY: wake_relay},
    )


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: committed if the block succeeds, rolled back if it raises."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in `url` if it does not exist yet."""
    import asyncpg  # only PostgreSQL deployments and tests get here

    parsed = make_url(url)
    admin = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database="postgres",
    )
    try:
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", parsed.database
        )
        if not exists:
            await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()


async def drop_schema(url: str, schema: str) -> None:
    if not is_postgres(url):
        return  # a SQLite file is its own schema: removing the file drops it
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await engine.dispose()
