"""The access service's long-lived parts: built once before the first request,
shared by every request, read through `app_components()` (typed)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from services.access.accounts import AccountService
from services.access.class_report import ClassFigures
from services.access.devices import KnownDevices
from services.access.next_books import ModelCache, model_cache
from services.access.passwords import PasswordHashing
from services.access.profiles import ProfileCache
from services.access.repository import AccessRepository
from services.access.settings import AccessSettings
from services.access.tokens import SigningKeyStore, TokenIssuer
from shared.clients.ratelimit import RateLimiter
from shared.http.auth import TokenVerifier
from shared.resources import Resources
from shared.service.deps import components_accessors


@dataclass
class Components:
    settings: AccessSettings
    keys: SigningKeyStore
    issuer: TokenIssuer
    hashing: PasswordHashing
    login_limiter: RateLimiter
    profiles: ProfileCache
    devices: KnownDevices
    class_figures: ClassFigures
    next_books_model: ModelCache


async def build_components(
    settings: AccessSettings, resources: Resources, _stack: AsyncExitStack
) -> Components:
    keys = SigningKeyStore(
        resources.engine,
        key_encryption_key=settings.key_encryption_key.get_secret_value(),
        refresh_seconds=settings.signing_key_refresh_seconds,
    )
    # Access verifies its own tokens from its key store: no HTTP call to itself.
    resources.verifier = TokenVerifier(
        keys=keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        is_revoked=resources.denylist.is_denied,
    )
    issuer = TokenIssuer(keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    return Components(
        settings=settings,
        keys=keys,
        issuer=issuer,
        hashing=PasswordHashing(
            time_cost=settings.password_hash_time_cost,
            memory_kib=settings.password_hash_memory_kib,
            parallelism=settings.password_hash_parallelism,
        ),
        login_limiter=RateLimiter(resources.redis, "login"),
        devices=KnownDevices(settings.key_encryption_key.get_secret_value()),
        profiles=ProfileCache(resources.bus),
        class_figures=ClassFigures(settings, resources.http, issuer),
        next_books_model=model_cache(resources),
    )


def account_service(
    components: Components, resources: Resources, session: AsyncSession
) -> AccountService:
    return AccountService(
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


app_components, get_components = components_accessors(Components)


ComponentsDep = Annotated[Components, Depends(get_components)]
