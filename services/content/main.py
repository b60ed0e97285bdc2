"""Assembles the content service from the shared app factory."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

from fastapi import FastAPI
from starlette.middleware import Middleware

from services.content.api import ROUTERS
from services.content.consumers import HANDLERS
from services.content.dependencies import ContentComponents
from services.content.fastpath import CatalogFastPath
from services.content.service import CATALOG_CHANNEL, CatalogCache
from services.content.settings import ContentSettings
from services.content.storage import ManuscriptStorage
from shared.app import Resources, create_service_app
from shared.events import Producer
from shared.runtime import ServiceDefinition
from shared.settings import ServiceSettings

DESCRIPTION = """Submissions and their review workflow, books, manuscript uploads and publishing.

The flow: a VOLUNTEER creates a submission, asks for an upload ticket
(`POST …/upload`, a presigned POST straight to S3), uploads the PDF, then
submits; a STORY_MANAGER reviews it; a BOOK_MANAGER turns an approved
submission into a book; a CONTENT_ADMIN publishes it into the public catalog.

Changes to an existing submission or book send its `version` back as
`If-Match` (every answer carries it as the `ETag`): 428 without it, 412 when
someone else changed it first. `Idempotency-Key` makes create, submit, review
and publish safe to retry. `GET /v1/books` needs no token.
"""


def build_components(settings: ContentSettings, resources: Resources) -> ContentComponents:
    names = settings.resource_names
    return ContentComponents(
        settings=settings,
        storage=ManuscriptStorage(
            resources.aws.s3,
            uploads_bucket=names.bucket("uploads"),
            published_bucket=names.bucket("published"),
            presigner=resources.aws.s3_public,
        ),
        catalog=CatalogCache(resources.bus, CATALOG_CHANNEL, ttl=settings.catalog_cache_seconds),
    )


def create_app(
    settings: ServiceSettings | None = None, resources: Resources | None = None
) -> FastAPI:
    content_settings = settings if isinstance(settings, ContentSettings) else ContentSettings()

    async def start(app: FastAPI, r: Resources, _stack: AsyncExitStack) -> None:
        app.state.content = build_components(content_settings, r)

    return create_service_app(
        content_settings,
        title="1001 Stories — content",
        description=DESCRIPTION,
        routers=ROUTERS,
        produces=Producer.CONTENT,
        resources=resources,
        extra_lifespan=start,
        middleware=[Middleware(CatalogFastPath)],
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
