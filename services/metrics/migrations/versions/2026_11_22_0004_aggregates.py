"""Metrics aggregates: hourly counters, distinct readers, and each entity's state.

Revision ID: metrics_0004
Revises: metrics_0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "metrics_0004"
down_revision: str | None = "metrics_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "event_log",
        sa.Column("dataversion", sa.String(length=10), server_default="1", nullable=False),
    )
    op.create_table(
        "hourly_counts",
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("dimension", sa.String(length=60), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("metric", "dimension", "hour", name=op.f("pk_hourly_counts")),
    )
    op.create_table(
        "reader_hours",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "user_id", "book_id", name=op.f("pk_reader_hours")),
    )
    op.create_index("ix_reader_hours_book", "reader_hours", ["book_id", "user_id"])
    op.create_table(
        "users",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("role_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
    )
    op.create_table(
        "submissions",
        sa.Column("submission_id", sa.Uuid(), nullable=False),
        sa.Column("language", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("submission_id", name=op.f("pk_submissions")),
    )
    op.create_index("ix_submissions_status", "submissions", ["status", "last_submitted_at"])
    op.create_table(
        "reviews",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds_waited", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_reviews")),
    )
    op.create_index("ix_reviews_decided_at", "reviews", ["decided_at"])
    op.create_table(
        "books",
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=True),
        sa.Column("language", sa.String(length=20), nullable=True),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("book_id", name=op.f("pk_books")),
    )
    op.create_index("ix_books_submission", "books", ["submission_id"])
    op.create_table(
        "book_grants",
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("teacher_id", "book_id", name=op.f("pk_book_grants")),
    )
    op.create_table(
        "reading",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("total_pages", sa.Integer(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("user_id", "book_id", name=op.f("pk_reading")),
    )
    op.create_index("ix_reading_book", "reading", ["book_id"])


def downgrade() -> None:
    for table in (
        "reading",
        "book_grants",
        "books",
        "reviews",
        "submissions",
        "users",
        "reader_hours",
        "hourly_counts",
    ):
        op.drop_table(table)
    op.drop_column("event_log", "dataversion")
