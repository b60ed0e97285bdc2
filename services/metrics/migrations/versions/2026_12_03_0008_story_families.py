"""Story families in the projection: each book's title, family, reading level and
derivation, and each submission's family, from book.* and submission.submitted
version 2. They stay null for what only version 1 events told; a rebuild
(`stories metrics rebuild`) fills what the event log holds.

Revision ID: metrics_0008
Revises: metrics_0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "metrics_0008"
down_revision: str | None = "metrics_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("books") as batch:
        batch.add_column(sa.Column("title", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("family_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("reading_level", sa.String(length=30), nullable=True))
        batch.add_column(sa.Column("derivation", sa.String(length=20), nullable=True))
    op.create_index("ix_books_family", "books", ["family_id"])
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("family_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("family_id")
    op.drop_index("ix_books_family", table_name="books")
    with op.batch_alter_table("books") as batch:
        for column in ("derivation", "reading_level", "family_id", "title"):
            batch.drop_column(column)
