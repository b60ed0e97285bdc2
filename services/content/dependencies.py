"""FastAPI dependencies of the content service: its service object, per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.components import Components, ComponentsDep
from services.content.repository import ContentRepository
from services.content.service import ContentService
from shared.app import Resources, ResourcesDep, SessionDep


def build_content_service(
    components: Components, resources: Resources, session: AsyncSession
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
