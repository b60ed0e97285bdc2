"""What is published (from content's events) and how far each reader got.

Revision ID: delivery_0003
Revises: delivery_0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "delivery_0003"
down_revision: str | None = "delivery_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "published_books",
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("object_key", sa.String(length=300), nullable=True),
        sa.Column("object_version", sa.String(length=200), nullable=True),
        sa.Column("access", sa.String(length=10), nullable=False),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("book_id", name=op.f("pk_published_books")),
    )
    op.create_table(
        "reading_progress",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("total_pages", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("announced_page", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "book_id", name=op.f("pk_reading_progress")),
    )
    op.create_index(
        "ix_reading_progress_user", "reading_progress", ["user_id", "updated_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_reading_progress_user", table_name="reading_progress")
    op.drop_table("reading_progress")
    op.drop_table("published_books")
