"""FastAPI dependencies of the access service: its service object, per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from services.access.components import Components, ComponentsDep
from services.access.repository import AccessRepository
from services.access.service import AccessService
from shared.app import Resources, ResourcesDep, SessionDep


def build_access_service(
    components: Components, resources: Resources, session: AsyncSession
) -> AccessService:
    return AccessService(
        repository=AccessRepository(session),
        settings=components.settings,
        hashing=components.hashing,
        issuer=components.issuer,
        limiter=components.login_limiter,
        devices=components.devices,
        decisions=resources.decisions,
        denylist=resources.denylist,
        profiles=components.profiles,
    )


async def get_access_service(
    session: SessionDep, resources: ResourcesDep, components: ComponentsDep
) -> AccessService:
    return build_access_service(components, resources, session)


AccessServiceDep = Annotated[AccessService, Depends(get_access_service)]
