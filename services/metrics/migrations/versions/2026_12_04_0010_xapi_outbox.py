"""xAPI statements waiting for the learning record store (#20): the ids of logged
events whose statements the LRS has not taken yet.

Revision ID: metrics_0010
Revises: metrics_0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "metrics_0010"
down_revision: str | None = "metrics_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "xapi_outbox",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_xapi_outbox"),
    )
    op.create_index("ix_xapi_outbox_occurred_at", "xapi_outbox", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_xapi_outbox_occurred_at", table_name="xapi_outbox")
    op.drop_table("xapi_outbox")
