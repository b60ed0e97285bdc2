"""At most one offline open per reader, book and hour counts (#37 F10): three
uploads of 500 made-up opens had put a book at the top of the "most read" feed.
Each uploaded open keeps the hour it happened in; a unique index on (reader, book,
hour) lets the claim take the first and pass over the rest, in one statement and
without a race between two uploads at once. Other events leave it NULL, and NULLs
never collide.

Revision ID: delivery_0009
Revises: delivery_0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "delivery_0009"
down_revision: str | None = "delivery_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("offline_reading_events") as batch:
        batch.add_column(sa.Column("open_hour", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "uq_offline_reading_events_open_hour",
        "offline_reading_events",
        ["user_id", "book_id", "open_hour"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_offline_reading_events_open_hour", table_name="offline_reading_events")
    with op.batch_alter_table("offline_reading_events") as batch:
        batch.drop_column("open_hour")
