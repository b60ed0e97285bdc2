from services.content.models import Base
from shared.migrations import run_migrations_from_env

# Created by hand on PostgreSQL only (see 0003): the catalog's free-text index.
run_migrations_from_env(Base.metadata, unmodelled_indexes=frozenset({"ix_books_search"}))
