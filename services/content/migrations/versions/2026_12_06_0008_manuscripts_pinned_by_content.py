"""Manuscripts pinned by content, not only by name (#37 F15): the checked copy's
SHA-256 and S3 version are recorded at submit, carried to the book, and publishing
copies that very version and compares the copy's SHA-256 with the pinned one.

Rows from before this revision keep NULLs: they publish by key, as they did.

Revision ID: content_0008
Revises: content_0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "content_0008"
down_revision: str | None = "content_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("manuscript_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("manuscript_version", sa.String(200), nullable=True))
    with op.batch_alter_table("books") as batch:
        batch.add_column(sa.Column("source_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("source_version", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("books") as batch:
        batch.drop_column("source_version")
        batch.drop_column("source_sha256")
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("manuscript_version")
        batch.drop_column("manuscript_sha256")
