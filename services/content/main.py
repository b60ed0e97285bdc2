"""The content service, declared once: the shared code builds its app and worker."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import structlog
from starlette.middleware import Middleware

from services.content import duplicates
from services.content.api import ROUTERS
from services.content.api.common import book_page, book_page_key
from services.content.components import Components, build_components
from services.content.consumers import HANDLERS
from services.content.dependencies import catalog_service
from services.content.fastpath import CatalogFastPath
from services.content.repository import CatalogQuery
from services.content.settings import ContentSettings
from shared.clients.db import unit_of_work
from shared.contracts.events import Producer
from shared.resources import Resources
from shared.service.definition import ServiceDefinition

log = structlog.get_logger(__name__)

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

# Public book pages loaded into the catalog cache at start-up, newest first: well
# under the cache's bound (10,000 entries), which the catalog's pages share.
WARM_BOOK_PAGES = 2_000


async def _book_pages(
    resources: Resources, settings: ContentSettings, limit: int
) -> dict[tuple[Any, ...], tuple[str, bytes]]:
    """The newest published books' public pages, exactly as `GET /v1/books/{id}`
    answers an anonymous reader, in two queries (the books, then their families)."""
    async with unit_of_work(resources.session_factory) as session:
        books, _, families = await catalog_service(resources, session).catalog_page(
            CatalogQuery(limit=limit)
        )
    return {
        book_page_key(book.id): book_page(book, settings, families[book.family_id])
        for book in books
    }


async def start(
    settings: ContentSettings, resources: Resources, stack: AsyncExitStack
) -> Components:
    components = await build_components(settings, resources, stack)
    # Before the first request (uvicorn listens once start-up ends), as access and
    # delivery do: measured at the peak, a deploy met a whole school with 100
    # books' pages missing at once and a book page's p95 in the first seconds was 1 s.
    # The near-duplicate libraries too, beside it (scipy under datasketch: seconds
    # of CPU once per process, which the first submit would otherwise wait for).
    pages, _ = await asyncio.gather(
        components.catalog.prime(lambda: _book_pages(resources, settings, WARM_BOOK_PAGES)),
        asyncio.to_thread(duplicates.load_libraries),
    )
    log.info("caches warmed", book_pages=pages)
    return components


SERVICE = ServiceDefinition[ContentSettings, Components](
    name="content",
    title="1001 Stories — content",
    description=DESCRIPTION,
    settings_class=ContentSettings,
    routers=ROUTERS,
    build_components=start,
    fast_paths=[Middleware(CatalogFastPath)],
    produces=Producer.CONTENT,
    handlers=HANDLERS,
    migrations=Path(__file__).parent / "migrations",
    default_port=8001,
)
