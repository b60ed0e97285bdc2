"""What a submission's analysis flagged (#40), from submission.submitted version
3: the kinds of its warnings and severe findings, comma-separated codes (never an
excerpt), which the dashboard shows beside the submissions waiting for review.

Revision ID: metrics_0011
Revises: metrics_0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "metrics_0011"
down_revision: str | None = "metrics_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("flags", sa.String(400), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("flags")
