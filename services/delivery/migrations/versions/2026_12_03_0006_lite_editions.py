"""Each published book's lite edition, from content's book.processed: its object and
the publication (object version) it was made from, so a lite edition of an older
publication is never served for a newer one.

Revision ID: delivery_0006
Revises: delivery_0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "delivery_0006"
down_revision: str | None = "delivery_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("published_books") as batch:
        batch.add_column(sa.Column("lite_key", sa.String(300), nullable=True))
        batch.add_column(sa.Column("lite_version", sa.String(200), nullable=True))
        batch.add_column(sa.Column("lite_source_version", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("published_books") as batch:
        for column in ("lite_source_version", "lite_version", "lite_key"):
            batch.drop_column(column)
