from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class DeliverySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DELIVERY_")

    service_name: ClassVar[str] = "delivery"

    database_url: str = "sqlite+aiosqlite:///./.stories/delivery.sqlite3"
