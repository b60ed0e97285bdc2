"""Assembles the metrics service from the shared app factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.metrics.api import router
from services.metrics.consumers import HANDLERS
from services.metrics.settings import MetricsSettings
from shared.app import Resources, create_service_app
from shared.runtime import ServiceDefinition
from shared.settings import ServiceSettings

DESCRIPTION = "Educational and workflow metrics from every platform event."


def create_app(
    settings: ServiceSettings | None = None, resources: Resources | None = None
) -> FastAPI:
    return create_service_app(
        settings or MetricsSettings(),
        title="1001 Stories — metrics",
        description=DESCRIPTION,
        routers=[router],
        produces=None,
        resources=resources,
    )


SERVICE = ServiceDefinition(
    name="metrics",
    settings_class=MetricsSettings,
    create_app=create_app,
    produces=None,
    handlers=HANDLERS,
    migrations=Path(__file__).parent / "migrations",
    default_port=8004,
)
