from services.content.main import SERVICE
from services.content.models import Base
from shared.migrations import run_migrations_from_env

run_migrations_from_env(
    Base.metadata,
    platform_tables=SERVICE.platform_tables,
    # Created by hand on PostgreSQL only (see 0003): the catalog's free-text index.
    unmodelled_indexes=frozenset({"ix_books_search"}),
)
