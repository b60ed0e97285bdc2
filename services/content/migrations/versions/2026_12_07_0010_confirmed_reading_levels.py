"""Reviewers' confirmed reading levels (#40), and the thresholds fitted on them.

At approval a reviewer may confirm or correct a submission's level: the level,
who and when are kept on the submission, beside the analysis's score that the
fit learns from. `stories reading-levels fit` writes one row a language to
reading_level_thresholds: the three scores where early, transitional and fluent
begin, how many confirmed levels they were fitted on, and when. A language with
no row is levelled by the word-count rule. A book keeps the estimate its
manuscript got (`estimated_level`) beside the level its reviewer confirmed.

Revision ID: content_0010
Revises: content_0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "content_0010"
down_revision: str | None = "content_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("confirmed_level", sa.String(20), nullable=True))
        batch.add_column(sa.Column("level_confirmed_by", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("level_confirmed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("books") as batch:
        batch.add_column(sa.Column("estimated_level", sa.String(20), nullable=True))
    op.create_table(
        "reading_level_thresholds",
        sa.Column("language", sa.String(35), primary_key=True),
        sa.Column("thresholds", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reading_level_thresholds")
    with op.batch_alter_table("books") as batch:
        batch.drop_column("estimated_level")
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("level_confirmed_at")
        batch.drop_column("level_confirmed_by")
        batch.drop_column("confirmed_level")
