from services.delivery.main import SERVICE
from services.delivery.models import Base
from shared.service.migrations import run_migrations_from_env

run_migrations_from_env(Base.metadata, platform_tables=SERVICE.platform_tables)
