"""Which hours' reader sketches wait for a confirmed write (figures from the
sketches only when none do, and Redis holds the worker's seal).

Existing hours start sealed-unknown: Redis holds no seal yet, so the first read
counts in PostgreSQL and the worker reseals every hour of the window once.

Revision ID: metrics_0006
Revises: metrics_0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "metrics_0006"
down_revision: str | None = "metrics_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reader_sketch_hours",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pending", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_reader_sketch_hours")),
    )


def downgrade() -> None:
    op.drop_table("reader_sketch_hours")
