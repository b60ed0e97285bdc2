"""The access service, declared once: the shared code builds its app and worker."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import structlog
from starlette.middleware import Middleware

from services.access.api import ROUTERS
from services.access.components import Components, account_service, build_components
from services.access.consent import expire_consents
from services.access.consumers import HANDLERS
from services.access.data_export import assemble_exports
from services.access.fastpath import AccessFastPath
from services.access.mail_outbox import send_mail
from services.access.next_books import keep_next_books_fitted
from services.access.repository import AccessRepository
from services.access.retention import keep_retention
from services.access.schemas import UserOut
from services.access.settings import AccessSettings
from services.access.users import UserAdministration
from shared.clients.db import unit_of_work
from shared.contracts.events import Producer
from shared.resources import Resources
from shared.service.definition import ServiceDefinition

log = structlog.get_logger(__name__)

DESCRIPTION = """Accounts, tokens, the seven roles, entitlements and authorization decisions.

Sign in with `POST /v1/auth/login`, then send `Authorization: Bearer <access_token>`.
Roles, lowest first: LEARNER, TEACHER, VOLUNTEER, STORY_MANAGER, BOOK_MANAGER,
CONTENT_ADMIN, ADMIN; a higher role may do all a lower one may.
`/v1/decisions` is internal: it answers only platform services' credentials.
"""

# Profiles loaded into the cache at start-up (the most recently created accounts first).
WARM_PROFILES = 200_000


async def _profiles(resources: Resources, limit: int) -> dict[uuid.UUID, bytes]:
    async with resources.session_factory() as session:
        users = await AccessRepository(session).newest_users(limit)
    return {user.id: UserOut.model_validate(user).model_dump_json().encode() for user in users}


async def start(
    settings: AccessSettings, resources: Resources, stack: AsyncExitStack
) -> Components:
    components = await build_components(settings, resources, stack)
    await components.keys.jwks()  # creates the first key on a fresh database
    # Before the first request (uvicorn listens once start-up ends): a deploy
    # must not meet a whole school with an empty profile cache.
    await components.profiles.prime(lambda: _profiles(resources, WARM_PROFILES))
    if settings.bootstrap_admin_email and settings.bootstrap_admin_password:
        async with unit_of_work(resources.session_factory) as session:
            admin = await UserAdministration(
                account_service(components, resources, session)
            ).create_admin(
                email=settings.bootstrap_admin_email,
                password=settings.bootstrap_admin_password.get_secret_value(),
                display_name="Administrator",
            )
        log.info("bootstrap admin ready", user_id=str(admin.id))
    return components


SERVICE = ServiceDefinition[AccessSettings, Components](
    name="access",
    title="1001 Stories — access",
    description=DESCRIPTION,
    settings_class=AccessSettings,
    routers=ROUTERS,
    build_components=start,
    fast_paths=[Middleware(AccessFastPath)],
    produces=Producer.ACCESS,
    handlers=HANDLERS,
    # Access alone holds addresses, so it alone sends mail (mail_outbox.py).
    worker_jobs=[
        send_mail,
        expire_consents,
        keep_retention,
        assemble_exports,
        keep_next_books_fitted,
    ],
    migrations=Path(__file__).parent / "migrations",
    default_port=8002,
)
