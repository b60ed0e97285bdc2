"""Assembles the delivery service from the shared app factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.delivery.api import router
from services.delivery.consumers import HANDLERS
from services.delivery.settings import DeliverySettings
from shared.app import Resources, create_service_app
from shared.events import Producer
from shared.runtime import ServiceDefinition
from shared.settings import ServiceSettings

DESCRIPTION = "Signed links to published books, and reading sessions."


def create_app(
    settings: ServiceSettings | None = None, resources: Resources | None = None
) -> FastAPI:
    return create_service_app(
        settings or DeliverySettings(),
        title="1001 Stories — delivery",
        description=DESCRIPTION,
        routers=[router],
        produces=Producer.DELIVERY,
        resources=resources,
    )


SERVICE = ServiceDefinition(
    name="delivery",
    settings_class=DeliverySettings,
    create_app=create_app,
    produces=Producer.DELIVERY,
    handlers=HANDLERS,
    migrations=Path(__file__).parent / "migrations",
    default_port=8003,
)
