from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AccessSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ACCESS_")

    service_name: ClassVar[str] = "access"

    database_url: str = "sqlite+aiosqlite:///./.stories/access.sqlite3"
