"""The languages each story manager reviews (empty: every language).

The server default stays, so an access task of the previous release, still
running during a rollout, can go on creating accounts.

Revision ID: access_0005
Revises: access_0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "access_0005"
down_revision: str | None = "access_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("review_languages", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("review_languages")
