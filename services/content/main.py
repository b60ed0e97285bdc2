"""The content service, declared once: the shared code builds its app and worker."""

from __future__ import annotations

from pathlib import Path

from starlette.middleware import Middleware

from services.content.api import ROUTERS
from services.content.components import Components, build_components
from services.content.consumers import HANDLERS
from services.content.fastpath import CatalogFastPath
from services.content.settings import ContentSettings
from shared.events import Producer
from shared.runtime import ServiceDefinition

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

SERVICE = ServiceDefinition[ContentSettings, Components](
    name="content",
    title="1001 Stories — content",
    description=DESCRIPTION,
    settings_class=ContentSettings,
    routers=ROUTERS,
    build_components=build_components,
    fast_paths=[Middleware(CatalogFastPath)],
    produces=Producer.CONTENT,
    handlers=HANDLERS,
    migrations=Path(__file__).parent / "migrations",
    default_port=8001,
)
