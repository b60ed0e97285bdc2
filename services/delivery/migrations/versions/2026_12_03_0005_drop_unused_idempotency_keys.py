"""Idempotency keys go: no delivery endpoint takes an Idempotency-Key (a link
or a page turn is safe to repeat as it is), so the table has never held a row.

Revision ID: delivery_0005
Revises: delivery_0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from shared.service.migrations import create_platform_tables, drop_platform_tables

revision: str = "delivery_0005"
down_revision: str | None = "delivery_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNUSED = ("idempotency_keys",)


def upgrade() -> None:
    drop_platform_tables(*UNUSED)


def downgrade() -> None:
    create_platform_tables(*UNUSED)
