"""Assembles the access service from the shared app factory."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import structlog
from fastapi import FastAPI
from starlette.middleware import Middleware

from services.access.api import ROUTERS
from services.access.consumers import HANDLERS
from services.access.dependencies import AccessComponents, build_access_service
from services.access.devices import KnownDevices
from services.access.fastpath import DecisionFastPath
from services.access.passwords import PasswordHashing
from services.access.profiles import ProfileCache
from services.access.repository import AccessRepository
from services.access.schemas import UserOut
from services.access.settings import AccessSettings
from services.access.tokens import SigningKeyStore, TokenIssuer
from shared.app import Resources, create_service_app
from shared.auth import TokenVerifier
from shared.db import unit_of_work
from shared.events import Producer
from shared.ratelimit import RateLimiter
from shared.runtime import ServiceDefinition
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

DESCRIPTION = """Accounts, tokens, the seven roles, entitlements and authorization decisions.

Sign in with `POST /v1/auth/login`, then send `Authorization: Bearer <access_token>`.
Roles, lowest first: LEARNER, TEACHER, VOLUNTEER, STORY_MANAGER, BOOK_MANAGER,
CONTENT_ADMIN, ADMIN; a higher role may do all a lower one may.
`/v1/decisions` is internal: it answers only platform services' credentials.
"""


def build_components(settings: AccessSettings, resources: Resources) -> AccessComponents:
    keys = SigningKeyStore(
        resources.engine,
        key_encryption_key=settings.key_encryption_key.get_secret_value(),
        refresh_seconds=settings.signing_key_refresh_seconds,
    )
    return AccessComponents(
        settings=settings,
        keys=keys,
        issuer=TokenIssuer(keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience),
        hashing=PasswordHashing(
            time_cost=settings.password_hash_time_cost,
            memory_kib=settings.password_hash_memory_kib,
            parallelism=settings.password_hash_parallelism,
        ),
        login_limiter=RateLimiter(resources.redis, "login"),
        devices=KnownDevices(settings.key_encryption_key.get_secret_value()),
        profiles=ProfileCache(resources.bus),
    )


# Profiles loaded into the cache at start-up (the most recently created accounts first).
WARM_PROFILES = 200_000


async def _profiles(resources: Resources, limit: int) -> dict[uuid.UUID, bytes]:
    async with resources.session_factory() as session:
        users = await AccessRepository(session).newest_users(limit)
    return {user.id: UserOut.model_validate(user).model_dump_json().encode() for user in users}


def create_app(
    settings: ServiceSettings | None = None, resources: Resources | None = None
) -> FastAPI:
    access_settings = settings if isinstance(settings, AccessSettings) else AccessSettings()

    async def start(app: FastAPI, r: Resources, _stack: AsyncExitStack) -> None:
        components = build_components(access_settings, r)
        app.state.access = components
        # Access verifies its own tokens from its key store: no HTTP call to itself.
        r.verifier = TokenVerifier(
            keys=components.keys,
            issuer=access_settings.jwt_issuer,
            audience=access_settings.jwt_audience,
            is_revoked=r.denylist.is_denied,
        )
        await components.keys.jwks()  # creates the first key on a fresh database
        # Before the first request (uvicorn listens once start-up ends): a deploy
        # must not meet a whole school with an empty profile cache.
        await components.profiles.prime(lambda: _profiles(r, WARM_PROFILES))
        if access_settings.bootstrap_admin_email and access_settings.bootstrap_admin_password:
            async with unit_of_work(r.session_factory) as session:
                admin = await build_access_service(components, r, session).create_admin(
                    email=access_settings.bootstrap_admin_email,
                    password=access_settings.bootstrap_admin_password.get_secret_value(),
                    display_name="Administrator",
                )
            log.info("bootstrap admin ready", user_id=str(admin.id))

    return create_service_app(
        access_settings,
        title="1001 Stories — access",
        description=DESCRIPTION,
        routers=ROUTERS,
        produces=Producer.ACCESS,
        resources=resources,
        extra_lifespan=start,
        middleware=[Middleware(DecisionFastPath)],
    )


SERVICE = ServiceDefinition(
    name="access",
    settings_class=AccessSettings,
    create_app=create_app,
    produces=Producer.ACCESS,
    handlers=HANDLERS,
    migrations=Path(__file__).parent / "migrations",
    default_port=8002,
)
