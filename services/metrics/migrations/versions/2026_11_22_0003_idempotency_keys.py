"""Idempotency keys of the metrics service.

Revision ID: metrics_0003
Revises: metrics_0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from shared.service.migrations import create_platform_tables, drop_platform_tables

revision: str = "metrics_0003"
down_revision: str | None = "metrics_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_platform_tables("idempotency_keys")


def downgrade() -> None:
    drop_platform_tables("idempotency_keys")
