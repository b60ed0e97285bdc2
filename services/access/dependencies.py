"""FastAPI dependencies of the access service: its components and its service object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.access.devices import KnownDevices
from services.access.passwords import PasswordHashing
from services.access.profiles import ProfileCache
from services.access.repository import AccessRepository
from services.access.service import AccessService
from services.access.settings import AccessSettings
from services.access.tokens import SigningKeyStore, TokenIssuer
from shared.app import Resources, ResourcesDep, SessionDep
from shared.ratelimit import RateLimiter


@dataclass
class AccessComponents:
    """Built once in the lifespan (see main.py) and shared by every request."""

    settings: AccessSettings
    keys: SigningKeyStore
    issuer: TokenIssuer
    hashing: PasswordHashing
    login_limiter: RateLimiter
    profiles: ProfileCache
    devices: KnownDevices


async def get_components(request: Request) -> AccessComponents:
    components: AccessComponents = request.app.state.access
    return components


ComponentsDep = Annotated[AccessComponents, Depends(get_components)]


def build_access_service(
    components: AccessComponents, resources: Resources, session: AsyncSession
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
