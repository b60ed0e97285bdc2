"""Submissions, their review history, and books (with the catalog's indexes).

Revision ID: content_0003
Revises: content_0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "content_0003"
down_revision: str | None = "content_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "books",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=20), nullable=False),
        sa.Column("age_min", sa.Integer(), nullable=False),
        sa.Column("age_max", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("reading_level", sa.String(length=30), nullable=False),
        sa.Column("access", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source_key", sa.String(length=300), nullable=False),
        sa.Column("source_filename", sa.String(length=200), nullable=True),
        sa.Column("cover_key", sa.String(length=300), nullable=True),
        sa.Column("edition", sa.Integer(), nullable=False),
        sa.Column("object_key", sa.String(length=300), nullable=True),
        sa.Column("object_version", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_books")),
        sa.UniqueConstraint("submission_id", name=op.f("uq_books_submission_id")),
    )
    op.create_index(
        "ix_books_catalog",
        "books",
        ["published_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'PUBLISHED'"),
        sqlite_where=sa.text("status = 'PUBLISHED'"),
    )
    op.create_index(
        "ix_books_catalog_category",
        "books",
        ["category", "published_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'PUBLISHED'"),
        sqlite_where=sa.text("status = 'PUBLISHED'"),
    )
    op.create_index(
        "ix_books_catalog_language",
        "books",
        ["language", "published_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'PUBLISHED'"),
        sqlite_where=sa.text("status = 'PUBLISHED'"),
    )
    op.create_index("ix_books_status", "books", ["status", "updated_at", "id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # Free-text search of the catalog. An expression index, so it lives
        # here only (autogenerate neither models nor compares those);
        # SQLite's embedded run scans instead.
        op.execute(
            "CREATE INDEX ix_books_search ON books USING gin "
            "(to_tsvector('simple', title || ' ' || summary)) WHERE status = 'PUBLISHED'"
        )
    op.create_table(
        "submission_transitions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=False),
        sa.Column("actor_role", sa.String(length=20), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_transitions")),
    )
    op.create_index(
        "ix_submission_transitions_submission",
        "submission_transitions",
        ["submission_id", "at", "id"],
        unique=False,
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=20), nullable=False),
        sa.Column("age_min", sa.Integer(), nullable=False),
        sa.Column("age_max", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("reading_level", sa.String(length=30), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("upload_key", sa.String(length=300), nullable=True),
        sa.Column("upload_filename", sa.String(length=200), nullable=True),
        sa.Column("manuscript_key", sa.String(length=300), nullable=True),
        sa.Column("manuscript_size", sa.BigInteger(), nullable=True),
        sa.Column("manuscript_filename", sa.String(length=200), nullable=True),
        sa.Column("reviewer_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
    )
    op.create_index(
        "ix_submissions_author", "submissions", ["author_id", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_submissions_queue", "submissions", ["status", "submitted_at", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_submissions_queue", table_name="submissions")
    op.drop_index("ix_submissions_author", table_name="submissions")
    op.drop_table("submissions")
    op.drop_index("ix_submission_transitions_submission", table_name="submission_transitions")
    op.drop_table("submission_transitions")
    op.drop_index("ix_books_status", table_name="books")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_books_search")
    op.drop_index(
        "ix_books_catalog_language",
        table_name="books",
        postgresql_where=sa.text("status = 'PUBLISHED'"),
        sqlite_where=sa.text("status = 'PUBLISHED'"),
    )
    op.drop_index(
        "ix_books_catalog_category",
        table_name="books",
        postgresql_where=sa.text("status = 'PUBLISHED'"),
        sqlite_where=sa.text("status = 'PUBLISHED'"),
    )
    op.drop_index(
        "ix_books_catalog",
        table_name="books",
        postgresql_where=sa.text("status = 'PUBLISHED'"),
        sqlite_where=sa.text("status = 'PUBLISHED'"),
    )
    op.drop_table("books")
