from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ContentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONTENT_")

    service_name: ClassVar[str] = "content"

    database_url: str = "sqlite+aiosqlite:///./.stories/content.sqlite3"
