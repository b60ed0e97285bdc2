"""Reading done offline (#20): the ids of uploaded events, per reader, so a retried
upload changes nothing.

Revision ID: delivery_0007
Revises: delivery_0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "delivery_0007"
down_revision: str | None = "delivery_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "offline_reading_events",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("happened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "event_id", name="pk_offline_reading_events"),
    )
    op.create_index("ix_offline_reading_events_received", "offline_reading_events", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_offline_reading_events_received", table_name="offline_reading_events")
    op.drop_table("offline_reading_events")
