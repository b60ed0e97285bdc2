"""Story families: every submission and book gets a family, a source and how it
was derived, credits and a licence; a book records what superseded it; one
published book per family, language and level.

Full-text search in each book's language: a book stores its text-search
configuration, and each configuration gets a partial GIN index (PostgreSQL
only), replacing the one `simple` index of 0003.

Existing stories are originals, each its own family (the submission's id, which
its book shares), under CC BY 4.0 with no credits recorded yet.

Revision ID: content_0006
Revises: content_0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "content_0006"
down_revision: str | None = "content_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREDITS = sa.JSON().with_variant(JSONB(), "postgresql")
TABLES = ("submissions", "books")
# Frozen here as at this revision (models.TEXT_SEARCH_CONFIGS may grow later,
# with a migration of its own).
SEARCH_CONFIGS = {
    "ar": "arabic",
    "da": "danish",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "id": "indonesian",
    "it": "italian",
    "ne": "nepali",
    "nl": "dutch",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
}


def search_index_sql(config: str) -> str:
    return (
        f"CREATE INDEX ix_books_search_{config} ON books USING gin "
        f"(to_tsvector('{config}', title || ' ' || summary)) "
        f"WHERE status = 'PUBLISHED' AND search_config = '{config}'"
    )


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("family_id", sa.Uuid(), nullable=True))
            batch.add_column(sa.Column("derived_from", sa.Uuid(), nullable=True))
            # Server defaults fill the existing rows and stay: a content task of
            # the previous release, still running during a rollout, writes rows
            # without these columns (it makes originals, under CC BY 4.0).
            batch.add_column(
                sa.Column(
                    "derivation", sa.String(length=20), nullable=False, server_default="original"
                )
            )
            batch.add_column(
                sa.Column("credits", CREDITS, nullable=False, server_default=sa.text("'[]'"))
            )
            batch.add_column(
                sa.Column(
                    "licence", sa.String(length=20), nullable=False, server_default="CC-BY-4.0"
                )
            )
    with op.batch_alter_table("books") as batch:
        batch.add_column(sa.Column("superseded_by", sa.Uuid(), nullable=True))
        batch.add_column(
            sa.Column(
                "search_config", sa.String(length=20), nullable=False, server_default="simple"
            )
        )
    op.execute("UPDATE submissions SET family_id = id")
    op.execute("UPDATE books SET family_id = submission_id")
    cases = " ".join(f"WHEN '{tag}' THEN '{config}'" for tag, config in SEARCH_CONFIGS.items())
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        primary = "lower(split_part(language, '-', 1))"
    else:
        primary = (
            "lower(CASE WHEN instr(language, '-') > 0 "
            "THEN substr(language, 1, instr(language, '-') - 1) ELSE language END)"
        )
    # Built from the constants above, not from input.
    op.execute(f"UPDATE books SET search_config = CASE {primary} {cases} ELSE 'simple' END")  # noqa: S608
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            # For the same rollout: a row of the previous release is an original,
            # its own family (PostgreSQL; the embedded SQLite run is never rolled).
            batch.alter_column(
                "family_id",
                existing_type=sa.Uuid(),
                nullable=False,
                server_default=sa.text("gen_random_uuid()") if postgresql else None,
            )
    op.create_index("ix_books_family", "books", ["family_id", "language", "reading_level"])
    op.create_index(
        "uq_books_published_version",
        "books",
        ["family_id", "language", "reading_level"],
        unique=True,
        postgresql_where=sa.text("status = 'PUBLISHED'"),
        sqlite_where=sa.text("status = 'PUBLISHED'"),
    )
    if postgresql:
        op.execute("DROP INDEX ix_books_search")
        for config in [*SEARCH_CONFIGS.values(), "simple"]:
            op.execute(search_index_sql(config))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for config in [*SEARCH_CONFIGS.values(), "simple"]:
            op.execute(f"DROP INDEX ix_books_search_{config}")
        op.execute(
            "CREATE INDEX ix_books_search ON books USING gin "
            "(to_tsvector('simple', title || ' ' || summary)) WHERE status = 'PUBLISHED'"
        )
    op.drop_index("uq_books_published_version", table_name="books")
    op.drop_index("ix_books_family", table_name="books")
    with op.batch_alter_table("books") as batch:
        batch.drop_column("search_config")
        batch.drop_column("superseded_by")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for column in ("licence", "credits", "derivation", "derived_from", "family_id"):
                batch.drop_column(column)
