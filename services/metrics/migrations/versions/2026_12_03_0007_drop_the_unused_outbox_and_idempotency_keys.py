"""The outbox and the idempotency keys go: metrics produces no events and no
endpoint of its takes an Idempotency-Key, so neither table has ever held a row.

Revision ID: metrics_0007
Revises: metrics_0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from shared.service.migrations import create_platform_tables, drop_platform_tables

revision: str = "metrics_0007"
down_revision: str | None = "metrics_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNUSED = ("outbox", "idempotency_keys")


def upgrade() -> None:
    drop_platform_tables(*UNUSED)


def downgrade() -> None:
    create_platform_tables(*UNUSED)
