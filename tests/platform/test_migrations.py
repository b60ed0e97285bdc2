"""Every service's migrations apply on PostgreSQL into its own schema, are
idempotent, and match the models exactly."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Uuid, column, insert, select, table, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.models import Book, Submission
from services.metrics.models import ReaderHour, RecordedEvent, TeacherLearner
from shared.clients.db import PlatformTables, UtcDateTime, create_engine, drop_schema
from shared.service.migrations import alembic_config, upgrade
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
        # Each service has only the shared tables it uses (an outbox if it
        # produces, an inbox if it consumes, idempotency keys if it takes them).
        platform = tables & set(PlatformTables.metadata.tables)
        assert platform == service.platform_tables
        assert "alembic_version" in tables
    finally:
        await drop_schema(database_url, schema)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_teachers_figures_are_filled_from_the_event_log_on_upgrade(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    """metrics_0005 fills opens per reader and hour, and each teacher's learners,
    from the events already logged: a teacher's figures are right at once."""
    migrations = SERVICES["metrics"].migrations
    url = database_url if backend == "postgresql" else f"sqlite+aiosqlite:///{tmp_path}/m.db"
    schema = unique_schema("metrics")
    teacher, learner, other, book = (uuid.uuid4() for _ in range(4))
    at = datetime(2026, 11, 30, 10, 15, tzinfo=UTC)
    logged = [
        ("delivery.issued", at, {"user_id": str(learner), "book_id": str(book)}),
        (
            "delivery.issued",
            at + timedelta(minutes=5),
            {"user_id": str(learner), "book_id": str(book)},
        ),
        ("delivery.issued", at, {"user_id": str(other), "book_id": str(book)}),
        (
            "entitlement.granted",
            at,
            {"user_id": str(learner), "book_id": str(book), "granted_by": str(teacher)},
        ),
        (
            "entitlement.granted",
            at,
            {"user_id": str(other), "book_id": str(book), "granted_by": None},
        ),
    ]
    engine = create_engine(url, schema=schema)
    try:
        await upgrade(migrations, url, schema, revision="metrics_0004")
        async with engine.begin() as connection:
            for event_type, occurred_at, data in logged:
                await connection.execute(
                    insert(RecordedEvent).values(
                        event_id=uuid.uuid4(),
                        event_type=event_type,
                        source="test",
                        occurred_at=occurred_at,
                        received_at=occurred_at,
                        data=data,
                    )
                )
            # reader_hours as metrics_0004 wrote them (no opens yet)
            before = table(
                "reader_hours",
                column("hour", UtcDateTime()),
                column("user_id", Uuid()),
                column("book_id", Uuid()),
            )
            for user in (learner, other):
                await connection.execute(
                    insert(before).values(hour=at.replace(minute=0), user_id=user, book_id=book)
                )
        await upgrade(migrations, url, schema)
        async with engine.connect() as connection:
            opens = dict(
                (await connection.execute(select(ReaderHour.user_id, ReaderHour.opens))).all()
            )
            learners = (await connection.execute(select(TeacherLearner))).all()
        assert opens == {learner: 2, other: 1}
        assert [(r.teacher_id, r.book_id, r.user_id) for r in learners] == [
            (teacher, book, learner)
        ]
    finally:
        await engine.dispose()
        if backend == "postgresql":
            await drop_schema(database_url, schema)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_existing_stories_become_originals_of_their_own_families(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    """content_0006: every existing submission and book is an original, its family the
    submission's id (shared by its book), under CC BY 4.0; each book is searched in
    its language's configuration."""
    migrations = SERVICES["content"].migrations
    url = database_url if backend == "postgresql" else f"sqlite+aiosqlite:///{tmp_path}/c.db"
    schema = unique_schema("content")
    engine = create_engine(url, schema=schema)
    at = datetime(2026, 11, 30, tzinfo=UTC)
    submission_id, book_ids = uuid.uuid4(), {"pt-BR": uuid.uuid4(), "sw": uuid.uuid4()}
    story = {
        "title": "T",
        "summary": "S",
        "age_min": 4,
        "age_max": 8,
        "category": "animals",
        "reading_level": "early",
        "version": 1,
        "status": "PUBLISHED",
        "created_at": at,
        "updated_at": at,
    }
    try:
        await upgrade(migrations, url, schema, revision="content_0005")
        async with engine.begin() as connection:
            # Rows as content_0005 wrote them (none of the new columns yet).
            await connection.execute(
                insert(
                    as_of("submissions", ["id", "author_id", "language", "status", *story])
                ).values(id=submission_id, author_id=uuid.uuid4(), language="sw", **story)
            )
            for language, book_id in book_ids.items():
                columns = ["id", "submission_id", "language", "access", "source_key", "edition"]
                await connection.execute(
                    insert(as_of("books", ["created_by", *columns, *story])).values(
                        id=book_id,
                        submission_id=submission_id if language == "sw" else uuid.uuid4(),
                        language=language,
                        access="free",
                        source_key="k",
                        edition=1,
                        created_by=uuid.uuid4(),
                        **story,
                    )
                )
        await upgrade(migrations, url, schema)
        async with AsyncSession(engine) as session:
            submission = (await session.scalars(select(Submission))).one()
            books = {b.language: b for b in await session.scalars(select(Book))}
        assert (submission.family_id, submission.derivation) == (submission_id, "original")
        assert (submission.credits, submission.licence) == ([], "CC-BY-4.0")
        assert books["sw"].family_id == submission_id  # the book shares its submission's family
        assert books["pt-BR"].family_id != submission_id
        assert books["pt-BR"].search_config == "portuguese"
        assert books["sw"].search_config == "simple"
        assert all(b.derived_from is None and b.superseded_by is None for b in books.values())
    finally:
        await engine.dispose()
        if backend == "postgresql":
            await drop_schema(database_url, schema)


def as_of(name: str, columns: list[str]) -> Any:
    """A table as an old revision had it: just the columns named."""
    typed = {"created_at": UtcDateTime(), "updated_at": UtcDateTime()}
    uuids = {"id", "author_id", "submission_id", "created_by"}
    return table(
        name,
        *(column(c, Uuid() if c in uuids else typed.get(c)) for c in dict.fromkeys(columns)),
    )
