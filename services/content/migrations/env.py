from services.content.main import SERVICE
from services.content.models import SIMPLE_SEARCH, TEXT_SEARCH_CONFIGS, Base
from shared.service.migrations import run_migrations_from_env

run_migrations_from_env(
    Base.metadata,
    platform_tables=SERVICE.platform_tables,
    # Created by hand on PostgreSQL only (see 0006): the catalog's free-text
    # indexes, one per text-search configuration.
    unmodelled_indexes=frozenset(
        f"ix_books_search_{config}" for config in [*TEXT_SEARCH_CONFIGS.values(), SIMPLE_SEARCH]
    ),
)
