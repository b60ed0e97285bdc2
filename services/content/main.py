"""Assembles the content service from the shared app factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.content.api import router
from services.content.consumers import HANDLERS
from services.content.settings import ContentSettings
from shared.app import Resources, create_service_app
from shared.events import Producer
from shared.runtime import ServiceDefinition
from shared.settings import ServiceSettings

DESCRIPTION = "Submissions and their review workflow, books, manuscript uploads and publishing."


def create_app(
    settings: ServiceSettings | None = None, resources: Resources | None = None
) -> FastAPI:
    return create_service_app(
        settings or ContentSettings(),
        title="1001 Stories — content",
        description=DESCRIPTION,
        routers=[router],
        produces=Producer.CONTENT,
        resources=resources,
    )


SERVICE = ServiceDefinition(
    name="content",
    settings_class=ContentSettings,
    create_app=create_app,
    produces=Producer.CONTENT,
    handlers=HANDLERS,
    migrations=Path(__file__).parent / "migrations",
    default_port=8001,
)
