"""The inbox goes: content consumes no events (its ServiceDefinition has no
handlers), so the table its first migration created has never held a row.

Revision ID: content_0005
Revises: content_0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from shared.service.migrations import create_platform_tables, drop_platform_tables

revision: str = "content_0005"
down_revision: str | None = "content_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNUSED = ("inbox",)


def upgrade() -> None:
    drop_platform_tables(*UNUSED)


def downgrade() -> None:
    create_platform_tables(*UNUSED)
