"""Processed books: content's worker processes each publication (page count, WebP
thumbnails, a lite edition, the pages' text), so content consumes book.published
and gets an inbox again (0005 dropped the unused one).

Full-text search covers the pages' text too: each configuration's partial GIN index
is rebuilt over title, summary and body_text (PostgreSQL only).

Revision ID: content_0007
Revises: content_0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.service.migrations import create_platform_tables, drop_platform_tables

revision: str = "content_0007"
down_revision: str | None = "content_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")
# Frozen as at this revision (content_0006's list, and `simple`).
SEARCH_CONFIGS = [
    "arabic",
    "danish",
    "german",
    "english",
    "spanish",
    "finnish",
    "french",
    "hungarian",
    "indonesian",
    "italian",
    "nepali",
    "dutch",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "swedish",
    "tamil",
    "turkish",
    "simple",
]


def search_index_sql(config: str, document: str) -> str:
    return (
        f"CREATE INDEX ix_books_search_{config} ON books USING gin "
        f"(to_tsvector('{config}', {document})) "
        f"WHERE status = 'PUBLISHED' AND search_config = '{config}'"
    )


def upgrade() -> None:
    create_platform_tables("inbox")
    with op.batch_alter_table("books") as batch:
        batch.add_column(sa.Column("processed_version", sa.String(200), nullable=True))
        batch.add_column(sa.Column("page_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("formats", DOCUMENT, nullable=True))
        batch.add_column(sa.Column("thumbnail_keys", DOCUMENT, nullable=True))
        batch.add_column(sa.Column("body_text", sa.Text(), nullable=False, server_default=""))
    if op.get_bind().dialect.name == "postgresql":
        for config in SEARCH_CONFIGS:
            op.execute(f"DROP INDEX ix_books_search_{config}")
            op.execute(search_index_sql(config, "title || ' ' || summary || ' ' || body_text"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for config in SEARCH_CONFIGS:
            op.execute(f"DROP INDEX ix_books_search_{config}")
            op.execute(search_index_sql(config, "title || ' ' || summary"))
    with op.batch_alter_table("books") as batch:
        for column in ("body_text", "thumbnail_keys", "formats", "page_count", "processed_version"):
            batch.drop_column(column)
    drop_platform_tables("inbox")
