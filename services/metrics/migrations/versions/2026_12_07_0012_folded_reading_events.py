"""What reading events added to the figures once their raw rows are gone (#41):
the retention job folds events older than METRICS_RAW_EVENT_DAYS into these
tables (the live figures already hold them) and removes the rows from the log, so
a rebuild starts from these and replays what the log still holds.

Revision ID: metrics_0012
Revises: metrics_0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "metrics_0012"
down_revision: str | None = "metrics_0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "folded_hourly_counts",
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("dimension", sa.String(length=60), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "metric", "dimension", "hour", name=op.f("pk_folded_hourly_counts")
        ),
    )
    op.create_table(
        "folded_reader_hours",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("opens", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("hour", "user_id", "book_id", name=op.f("pk_folded_reader_hours")),
    )
    op.create_index("ix_folded_reader_hours_user", "folded_reader_hours", ["user_id"])
    op.create_table(
        "folded_reading",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("total_pages", sa.Integer(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("first_opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_read_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("user_id", "book_id", name=op.f("pk_folded_reading")),
    )


def downgrade() -> None:
    op.drop_table("folded_reading")
    op.drop_index("ix_folded_reader_hours_user", table_name="folded_reader_hours")
    op.drop_table("folded_reader_hours")
    op.drop_table("folded_hourly_counts")
