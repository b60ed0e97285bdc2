"""The review queue lists flagged work first (#40): a submission whose analysis
found something a reviewer must look at (a warning or a severe finding) is
`flagged`, set at submit; the queue's index leads with it.

Rows submitted before this revision are not flagged (they have no analysis).

Revision ID: content_0012
Revises: content_0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "content_0012"
down_revision: str | None = "content_0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(
            sa.Column("flagged", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.drop_index("ix_submissions_queue", table_name="submissions")
    op.create_index(
        "ix_submissions_queue", "submissions", ["status", "flagged", "submitted_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_submissions_queue", table_name="submissions")
    op.create_index("ix_submissions_queue", "submissions", ["status", "submitted_at", "id"])
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("flagged")
