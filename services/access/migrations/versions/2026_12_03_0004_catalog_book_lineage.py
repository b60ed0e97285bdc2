"""The read model of books learns each book's reading level and story family
(from book.* version 2; null for books heard of only in version 1).

Revision ID: access_0004
Revises: access_0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "access_0004"
down_revision: str | None = "access_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_books") as batch:
        batch.add_column(sa.Column("reading_level", sa.String(length=30), nullable=True))
        batch.add_column(sa.Column("family_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("catalog_books") as batch:
        batch.drop_column("family_id")
        batch.drop_column("reading_level")
