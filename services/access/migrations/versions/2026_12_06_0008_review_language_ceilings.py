"""The review languages an ADMIN set for a story manager, kept as a ceiling (#37 F8:
`PUT /v1/users/me/review-languages []` lifted an ADMIN's restriction). NULL: no
ceiling, the reviewer chooses freely, as before.

Revision ID: access_0008
Revises: access_0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "access_0008"
down_revision: str | None = "access_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("review_languages_ceiling", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("review_languages_ceiling")
