"""Idempotency keys of the delivery service.

Revision ID: delivery_0002
Revises: delivery_0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from shared.service.migrations import create_platform_tables, drop_platform_tables

revision: str = "delivery_0002"
down_revision: str | None = "delivery_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_platform_tables("idempotency_keys")


def downgrade() -> None:
    drop_platform_tables("idempotency_keys")
