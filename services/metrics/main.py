"""The metrics service, declared once: the shared code builds its app and worker."""

from __future__ import annotations

from pathlib import Path

from services.metrics.api import ROUTERS
from services.metrics.components import Components, build_components
from services.metrics.consumers import HANDLERS
from services.metrics.export import export_to_cloudwatch
from services.metrics.projection import keep_reader_sketches_sealed
from services.metrics.retention import keep_retention
from services.metrics.settings import MetricsSettings
from services.metrics.xapi import send_statements
from shared.service.definition import ServiceDefinition

DESCRIPTION = """Educational and workflow metrics from every platform event.

Every event the platform emits is logged and moves the figures: people by role,
the review and publishing workflow, and reading (PDF opens, distinct readers,
completions). Figures are for CONTENT_ADMIN and up; a TEACHER sees the reading
figures of books they granted. `/dashboard` charts them for the platform team.
"""

SERVICE = ServiceDefinition[MetricsSettings, Components](
    name="metrics",
    title="1001 Stories — metrics",
    description=DESCRIPTION,
    settings_class=MetricsSettings,
    routers=ROUTERS,
    build_components=build_components,
    produces=None,
    handlers=HANDLERS,
    migrations=Path(__file__).parent / "migrations",
    default_port=8004,
    worker_jobs=[
        export_to_cloudwatch,
        keep_reader_sketches_sealed,
        send_statements,
        keep_retention,
    ],
)
