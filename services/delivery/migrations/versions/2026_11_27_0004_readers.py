"""Delivery's own read model of readers: roles and entitlements, from access's events,
so a link is decided here without asking access.

Revision ID: delivery_0004
Revises: delivery_0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "delivery_0004"
down_revision: str | None = "delivery_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "readers",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("role_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_readers")),
    )
    op.create_table(
        "reader_entitlements",
        sa.Column("entitlement_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("entitlement_id", name=op.f("pk_reader_entitlements")),
    )
    op.create_index("ix_reader_entitlements_user", "reader_entitlements", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_reader_entitlements_user", table_name="reader_entitlements")
    op.drop_table("reader_entitlements")
    op.drop_table("readers")
