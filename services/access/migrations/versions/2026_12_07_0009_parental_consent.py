"""Parents' consent and mail (#41): each account says on what ground its data is
held (`users.consent`), a child's consent request waits in `parental_consents`,
and mail waits in `mail_outbox` until the server takes it.

Accounts made before this are "not-asked", class accounts "school" (their teacher
made them under the school's consent).

Revision ID: access_0009
Revises: access_0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "access_0009"
down_revision: str | None = "access_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("consent", sa.String(length=20), nullable=False, server_default="not-asked")
        )
    op.execute("UPDATE users SET consent = 'school' WHERE home_class_id IS NOT NULL")
    op.create_table(
        "parental_consents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("parent_email", sa.String(length=320), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_parental_consents_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parental_consents")),
        sa.UniqueConstraint("user_id", name=op.f("uq_parental_consents_user_id")),
    )
    op.create_index("ix_parental_consents_expires_at", "parental_consents", ["expires_at"])
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_outbox")),
    )
    op.create_index("ix_mail_outbox_next_attempt_at", "mail_outbox", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_mail_outbox_next_attempt_at", table_name="mail_outbox")
    op.drop_table("mail_outbox")
    op.drop_index("ix_parental_consents_expires_at", table_name="parental_consents")
    op.drop_table("parental_consents")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("consent")
