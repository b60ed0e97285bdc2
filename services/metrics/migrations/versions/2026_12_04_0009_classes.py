"""Classes (#19): each class's teacher, members and assigned books, from access's
class.* events; and per reader and book, how often they opened it and when they
last read it, so a class report needs no hourly tables. `total_pages` may now be
null: a reader who opened a book but announced no page yet. A rebuild
(`stories metrics rebuild`) fills the new columns from the event log.

Revision ID: metrics_0009
Revises: metrics_0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "metrics_0009"
down_revision: str | None = "metrics_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reading") as batch:
        batch.alter_column("total_pages", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("opens", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("first_opened_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_read_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "classes",
        sa.Column("class_id", sa.Uuid(), primary_key=True),
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
    )
    op.create_table(
        "class_members",
        sa.Column("class_id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), primary_key=True),
        sa.Column("member", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_class_members_user", "class_members", ["user_id"])
    op.create_table(
        "class_assignments",
        sa.Column("assignment_id", sa.Uuid(), primary_key=True),
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_class_assignments_class", "class_assignments", ["class_id"])


def downgrade() -> None:
    op.drop_table("class_assignments")
    op.drop_table("class_members")
    op.drop_table("classes")
    with op.batch_alter_table("reading") as batch:
        for column in ("last_read_at", "first_opened_at", "opens"):
            batch.drop_column(column)
        batch.alter_column("total_pages", existing_type=sa.Integer(), nullable=False)
