"""The next book (#42): each reader's reading history, the model's book likeness,
each book's recent popularity and the languages a reader says they read.

Revision ID: access_0011
Revises: access_0010
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "access_0011"
down_revision: str | None = "access_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reading_history",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_reading_history_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "book_id", name=op.f("pk_reading_history")),
    )  # fmt: skip
    op.create_index("ix_reading_history_book", "reading_history", ["book_id"])
    op.create_table(
        "book_likeness",
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("other_id", sa.Uuid(), nullable=False),
        sa.Column("likeness", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("book_id", "other_id", name=op.f("pk_book_likeness")),
    )
    with op.batch_alter_table("catalog_books") as batch:
        batch.add_column(sa.Column("popularity", sa.Float(), server_default="0", nullable=False))
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("reading_languages", sa.JSON(), server_default="[]", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("reading_languages")
    with op.batch_alter_table("catalog_books") as batch:
        batch.drop_column("popularity")
    op.drop_table("book_likeness")
    op.drop_index("ix_reading_history_book", table_name="reading_history")
    op.drop_table("reading_history")
