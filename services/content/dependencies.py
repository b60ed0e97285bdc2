"""FastAPI dependencies of the content service: its aggregates' services, per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.books import BookService
from services.content.catalog import CatalogService
from services.content.components import ComponentsDep
from services.content.repository import ContentRepository
from services.content.reviews import ReviewService
from services.content.submissions import SubmissionService
from shared.resources import Resources
from shared.service.deps import ResourcesDep, SessionDep


async def get_submission_service(
    session: SessionDep, resources: ResourcesDep, components: ComponentsDep
) -> SubmissionService:
    return SubmissionService(
        repository=ContentRepository(session),
        settings=components.settings,
        storage=components.storage,
        access=resources.access,
    )


async def get_review_service(
    session: SessionDep, resources: ResourcesDep, components: ComponentsDep
) -> ReviewService:
    return ReviewService(await get_submission_service(session, resources, components))


async def get_book_service(
    session: SessionDep, resources: ResourcesDep, components: ComponentsDep
) -> BookService:
    return BookService(
        repository=ContentRepository(session),
        settings=components.settings,
        storage=components.storage,
        access=resources.access,
        catalog=components.catalog,
    )


def catalog_service(resources: Resources, session: AsyncSession) -> CatalogService:
    # Built by the catalog endpoints themselves, inside the cache's loader: a hit
    # opens no session at all.
    return CatalogService(repository=ContentRepository(session), access=resources.access)


SubmissionServiceDep = Annotated[SubmissionService, Depends(get_submission_service)]
ReviewServiceDep = Annotated[ReviewService, Depends(get_review_service)]
BookServiceDep = Annotated[BookService, Depends(get_book_service)]
