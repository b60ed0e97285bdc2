"""Classes (#19): a teacher's classes, their members, and class accounts (children
without email: a username within their home class instead).

`users.email` becomes nullable; a check keeps every account either a person
with an email or a class account with its username. An access task of the
previous release, still running during a rollout, keeps creating accounts with
an email, which the check allows.

Revision ID: access_0006
Revises: access_0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "access_0006"
down_revision: str | None = "access_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.alter_column("email", existing_type=sa.String(length=320), nullable=True)
        batch.add_column(sa.Column("username", sa.String(length=30), nullable=True))
        batch.add_column(sa.Column("home_class_id", sa.Uuid(), nullable=True))
        batch.create_index(
            "uq_users_home_class_username", ["home_class_id", "username"], unique=True
        )
        batch.create_check_constraint(
            op.f("ck_users_email_or_class_account"),
            "(email IS NOT NULL) OR (home_class_id IS NOT NULL AND username IS NOT NULL)",
        )
    op.create_table(
        "classes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("grade", sa.String(length=30), nullable=True),
        sa.Column("join_code", sa.String(length=12), nullable=False),
        sa.Column("join_code_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["teacher_id"], ["users.id"], name=op.f("fk_classes_teacher_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classes")),
        sa.UniqueConstraint("join_code", name=op.f("uq_classes_join_code")),
    )
    op.create_index(
        "ix_classes_teacher_created", "classes", ["teacher_id", "created_at", "id"], unique=False
    )
    op.create_table(
        "class_members",
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["classes.id"],
            name=op.f("fk_class_members_class_id_classes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_class_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("class_id", "user_id", name=op.f("pk_class_members")),
    )
    op.create_index("ix_class_members_user_id", "class_members", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_class_members_user_id", table_name="class_members")
    op.drop_table("class_members")
    op.drop_index("ix_classes_teacher_created", table_name="classes")
    op.drop_table("classes")
    op.execute("DELETE FROM users WHERE email IS NULL")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("ck_users_email_or_class_account", type_="check")
        batch.drop_index("uq_users_home_class_username")
        batch.drop_column("home_class_id")
        batch.drop_column("username")
        batch.alter_column("email", existing_type=sa.String(length=320), nullable=False)
