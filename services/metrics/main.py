"""Assembles the metrics service from the shared app factory."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

from fastapi import FastAPI

from services.metrics.api import ROUTERS
from services.metrics.consumers import HANDLERS
from services.metrics.export import export_to_cloudwatch
from services.metrics.service import keep_reader_sketches_sealed
from services.metrics.settings import MetricsSettings
from shared.app import Resources, create_service_app
from shared.runtime import ServiceDefinition
from shared.settings import ServiceSettings

DESCRIPTION = """Educational and workflow metrics from every platform event.

Every event the platform emits is logged and moves the figures: people by role,
the review and publishing workflow, and reading (PDF opens, distinct readers,
completions). Figures are for CONTENT_ADMIN and up; a TEACHER sees the reading
figures of books they granted. `/dashboard` charts them for the platform team.
"""


def create_app(
    settings: ServiceSettings | None = None, resources: Resources | None = None
) -> FastAPI:
    metrics_settings = settings if isinstance(settings, MetricsSettings) else MetricsSettings()

    async def start(app: FastAPI, _r: Resources, _stack: AsyncExitStack) -> None:
        app.state.metrics_settings = metrics_settings

    return create_service_app(
        metrics_settings,
        title="1001 Stories — metrics",
        description=DESCRIPTION,
        routers=ROUTERS,
        produces=None,
        resources=resources,
        extra_lifespan=start,
    )


SERVICE = ServiceDefinition(
    name="metrics",
    settings_class=MetricsSettings,
    create_app=create_app,
    produces=None,
    handlers=HANDLERS,
    migrations=Path(__file__).parent / "migrations",
    default_port=8004,
    worker_jobs=[export_to_cloudwatch, keep_reader_sketches_sealed],
)
