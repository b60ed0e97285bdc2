"""Assembles the access service from the shared app factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.access.api import router
from services.access.consumers import HANDLERS
from services.access.settings import AccessSettings
from shared.app import Resources, create_service_app
from shared.events import Producer
from shared.runtime import ServiceDefinition
from shared.settings import ServiceSettings

DESCRIPTION = "Accounts, tokens, the seven roles, entitlements and authorization decisions."


def create_app(
    settings: ServiceSettings | None = None, resources: Resources | None = None
) -> FastAPI:
    return create_service_app(
        settings or AccessSettings(),
        title="1001 Stories — access",
        description=DESCRIPTION,
        routers=[router],
        produces=Producer.ACCESS,
        resources=resources,
    )


SERVICE = ServiceDefinition(
    name="access",
    settings_class=AccessSettings,
    create_app=create_app,
    produces=Producer.ACCESS,
    handlers=HANDLERS,
    migrations=Path(__file__).parent / "migrations",
    default_port=8002,
)
