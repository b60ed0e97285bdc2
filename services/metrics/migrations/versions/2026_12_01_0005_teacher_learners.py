"""A teacher's figures count only their learners: opens per reader and hour, and
which learners each teacher granted each book to.

Both are derived from the event log, so they are filled from it here: figures read
right after the upgrade are exact, not zeros waiting for `stories metrics rebuild`.

Revision ID: metrics_0005
Revises: metrics_0004
Create Date: 2026-12-01
"""

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from shared.clients.db import UtcDateTime

revision: str = "metrics_0005"
down_revision: str | None = "metrics_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

event_log = sa.table(
    "event_log",
    sa.column("event_type", sa.String),
    sa.column("occurred_at", UtcDateTime()),
    sa.column("data", sa.JSON),
)
reader_hours = sa.table(
    "reader_hours",
    sa.column("hour", UtcDateTime()),
    sa.column("user_id", sa.Uuid()),
    sa.column("book_id", sa.Uuid()),
    sa.column("opens", sa.Integer),
)
teacher_learners = sa.table(
    "teacher_learners",
    sa.column("teacher_id", sa.Uuid()),
    sa.column("book_id", sa.Uuid()),
    sa.column("user_id", sa.Uuid()),
)


def _hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def upgrade() -> None:
    op.add_column(
        "reader_hours", sa.Column("opens", sa.Integer(), server_default="0", nullable=False)
    )
    op.create_table(
        "teacher_learners",
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint(
            "teacher_id", "book_id", "user_id", name=op.f("pk_teacher_learners")
        ),
    )
    bind = op.get_bind()
    opens: Counter[tuple[datetime, uuid.UUID, uuid.UUID]] = Counter()
    issued = sa.select(event_log.c.occurred_at, event_log.c.data).where(
        event_log.c.event_type == "delivery.issued"
    )
    for occurred_at, data in bind.execute(issued):
        opens[(_hour(occurred_at), uuid.UUID(data["user_id"]), uuid.UUID(data["book_id"]))] += 1
    for (hour, user_id, book_id), count in opens.items():
        bind.execute(
            sa.update(reader_hours)
            .where(
                reader_hours.c.hour == hour,
                reader_hours.c.user_id == user_id,
                reader_hours.c.book_id == book_id,
            )
            .values(opens=count)
        )
    granted = sa.select(event_log.c.data).where(event_log.c.event_type == "entitlement.granted")
    learners = {
        (uuid.UUID(data["granted_by"]), uuid.UUID(data["book_id"]), uuid.UUID(data["user_id"]))
        for (data,) in bind.execute(granted)
        if data.get("granted_by")
    }
    if learners:
        bind.execute(
            sa.insert(teacher_learners),
            [{"teacher_id": t, "book_id": b, "user_id": u} for t, b, u in sorted(learners)],
        )


def downgrade() -> None:
    op.drop_table("teacher_learners")
    op.drop_column("reader_hours", "opens")
