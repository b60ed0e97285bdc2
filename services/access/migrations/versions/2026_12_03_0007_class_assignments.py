"""Class assignments (#19): a book given to a whole class; the entitlements it
gives carry its id, so taking it back takes back exactly those.

Revision ID: access_0007
Revises: access_0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "access_0007"
down_revision: str | None = "access_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "class_assignments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assigned_by", sa.Uuid(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["classes.id"],
            name=op.f("fk_class_assignments_class_id_classes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_class_assignments")),
    )
    op.create_index(
        "uq_class_assignments_live_class_book",
        "class_assignments",
        ["class_id", "book_id"],
        unique=True,
        postgresql_where=sa.text("removed_at IS NULL"),
        sqlite_where=sa.text("removed_at IS NULL"),
    )
    with op.batch_alter_table("entitlements") as batch:
        batch.add_column(sa.Column("assignment_id", sa.Uuid(), nullable=True))
        batch.create_index("ix_entitlements_assignment_id", ["assignment_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("entitlements") as batch:
        batch.drop_index("ix_entitlements_assignment_id")
        batch.drop_column("assignment_id")
    op.drop_index("uq_class_assignments_live_class_book", table_name="class_assignments")
    op.drop_table("class_assignments")
