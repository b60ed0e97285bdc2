"""The outbox and inbox of the access service.

Revision ID: access_0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from shared.service.migrations import create_platform_tables, drop_platform_tables

revision: str = "access_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_platform_tables("outbox", "inbox")


def downgrade() -> None:
    drop_platform_tables("outbox", "inbox")
