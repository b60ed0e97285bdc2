"""Near-duplicates (#40): each submitted manuscript's fingerprint, and the LSH
bands that find its look-alikes without reading every other fingerprint.

A fingerprint is a MinHash signature of the text's three-word shingles and the
perceptual hashes of its illustrations (services/content/duplicates.py). Each
band is a 63-bit hash of a slice of them; two manuscripts sharing one are
compared in full. Only what was computed is kept: no text, no picture.

Revision ID: content_0011
Revises: content_0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "content_0011"
down_revision: str | None = "content_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "manuscript_fingerprints",
        sa.Column("submission_id", sa.Uuid(), primary_key=True),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("signature", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True),
        sa.Column("illustrations", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    )
    op.create_table(
        "fingerprint_bands",
        sa.Column("band", sa.BigInteger(), primary_key=True),
        sa.Column("submission_id", sa.Uuid(), primary_key=True),
    )
    op.create_index("ix_fingerprint_bands_submission", "fingerprint_bands", ["submission_id"])


def downgrade() -> None:
    op.drop_index("ix_fingerprint_bands_submission", table_name="fingerprint_bands")
    op.drop_table("fingerprint_bands")
    op.drop_table("manuscript_fingerprints")
