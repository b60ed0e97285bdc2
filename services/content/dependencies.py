"""FastAPI dependencies of the content service: its components and its service object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.repository import ContentRepository
from services.content.service import CatalogCache, ContentService
from services.content.settings import ContentSettings
from services.content.storage import ManuscriptStorage
from shared.app import Resources, ResourcesDep, SessionDep


@dataclass
class ContentComponents:
    """Built once in the lifespan (see main.py) and shared by every request."""

    settings: ContentSettings
    storage: ManuscriptStorage
    catalog: CatalogCache


async def get_components(request: Request) -> ContentComponents:
    components: ContentComponents = request.app.state.content
    return components


ComponentsDep = Annotated[ContentComponents, Depends(get_components)]


def build_content_service(
    components: ContentComponents, resources: Resources, session: AsyncSession
) -> ContentService:
    return ContentService(
        repository=ContentRepository(session),
        settings=components.settings,
        storage=components.storage,
        access=resources.access,
        catalog=components.catalog,
    )


async def get_content_service(
    session: SessionDep, resources: ResourcesDep, components: ComponentsDep
) -> ContentService:
    return build_content_service(components, resources, session)


ContentServiceDep = Annotated[ContentService, Depends(get_content_service)]
