"""What a first reader notices (#40): each submission's analysis of its pinned
manuscript's text (the language detected, the reading-level estimate and its
features, the findings), measured at submit; and the hold a severe finding puts
on it until a CONTENT_ADMIN clears it (for those bytes: their SHA-256).

Rows submitted before this revision keep NULL: no analysis, said as such.

Revision ID: content_0009
Revises: content_0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "content_0009"
down_revision: str | None = "content_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(
            sa.Column("analysis", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True)
        )
        batch.add_column(sa.Column("held", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("hold_cleared_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("hold_cleared_sha256")
        batch.drop_column("held")
        batch.drop_column("analysis")
