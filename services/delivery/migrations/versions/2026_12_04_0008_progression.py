"""Reading apps' progression (#20, OPDS Progression): each reader's last device and
the device time of its last progression, and each publication's page count.

Revision ID: delivery_0008
Revises: delivery_0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "delivery_0008"
down_revision: str | None = "delivery_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reading_progress") as batch:
        batch.add_column(sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("device_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("device_name", sa.String(100), nullable=True))
    with op.batch_alter_table("published_books") as batch:
        batch.add_column(sa.Column("page_count", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("published_books") as batch:
        batch.drop_column("page_count")
    with op.batch_alter_table("reading_progress") as batch:
        for column in ("device_name", "device_id", "modified_at"):
            batch.drop_column(column)
