"""The metrics event log.

Revision ID: metrics_0002
Revises: metrics_0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "metrics_0002"
down_revision: str | None = "metrics_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_log",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_event_log")),
    )
    op.create_index(
        "ix_event_log_type_occurred_at", "event_log", ["event_type", "occurred_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_event_log_type_occurred_at", table_name="event_log")
    op.drop_table("event_log")
