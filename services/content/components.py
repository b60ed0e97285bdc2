"""The content service's long-lived parts: built once before the first request,
shared by every request, read through `components()` (typed)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.content.catalog import CATALOG_CHANNEL, CatalogCache, cached_size
from services.content.check_queue import CheckQueue
from services.content.most_read import MostReadBooks
from services.content.next_books import ReadersNextBooks
from services.content.settings import ContentSettings
from services.content.storage import ManuscriptStorage
from shared.resources import Resources
from shared.service.deps import components_accessors


@dataclass
class Components:
    settings: ContentSettings
    storage: ManuscriptStorage
    catalog: CatalogCache
    most_read: MostReadBooks
    next_books: ReadersNextBooks


async def build_components(
    settings: ContentSettings, resources: Resources, _stack: AsyncExitStack
) -> Components:
    names = settings.resource_names
    return Components(
        settings=settings,
        storage=ManuscriptStorage(
            resources.aws.s3,
            uploads_bucket=names.bucket("uploads"),
            published_bucket=names.bucket("published"),
            presigner=resources.aws.s3_public,
            checks=CheckQueue(
                at_once=settings.pdf_checks_at_once, waiting=settings.pdf_checks_waiting
            ),
        ),
        catalog=CatalogCache(
            resources.bus,
            CATALOG_CHANNEL,
            ttl=settings.catalog_cache_seconds,
            max_bytes=settings.catalog_cache_bytes,
            size_of=cached_size,
        ),
        most_read=MostReadBooks(settings, resources.http, resources.access),
        next_books=ReadersNextBooks(settings, resources.http),
    )


app_components, get_components = components_accessors(Components)


ComponentsDep = Annotated[Components, Depends(get_components)]
