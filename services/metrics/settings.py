from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class MetricsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="METRICS_")

    service_name: ClassVar[str] = "metrics"

    database_url: str = "sqlite+aiosqlite:///./.stories/metrics.sqlite3"
