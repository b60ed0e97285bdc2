from services.metrics.models import Base
from shared.migrations import run_migrations_from_env

run_migrations_from_env(Base.metadata)
