"""Operator commands of the access service: the first admin, signing-key rotation."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta

from services.access.components import account_service, build_components
from services.access.models import SigningKey
from services.access.settings import AccessSettings
from services.access.tokens import rotate_signing_key
from services.access.users import UserAdministration
from shared.clients.db import unit_of_work
from shared.contracts.errors import Problem
from shared.resources import open_resources
from shared.settings import DATABASE_SETTINGS, checking_only


async def create_admin(email: str, password: str, display_name: str) -> int:
    with checking_only(*DATABASE_SETTINGS):
        settings = AccessSettings()
    async with AsyncExitStack() as stack:
        resources = await open_resources(settings, stack)
        components = await build_components(settings, resources, stack)
        try:
            async with unit_of_work(resources.session_factory) as session:
                user = await UserAdministration(
                    account_service(components, resources, session)
                ).create_admin(email=email, password=password, display_name=display_name)
        except Problem as refused:
            print(f"refused: {refused.detail or refused.title}")
            return 1
    print(f"{user.email} is ADMIN (id {user.id})")
    return 0


async def rotate_key() -> int:
    with checking_only(*DATABASE_SETTINGS, "key_encryption_key"):
        settings = AccessSettings()
    longest = max(settings.access_token_ttl_seconds, settings.service_token_ttl_seconds)
    async with AsyncExitStack() as stack:
        resources = await open_resources(settings, stack)
        async with unit_of_work(resources.session_factory) as session:
            new: SigningKey = await rotate_signing_key(
                session,
                key_encryption_key=settings.key_encryption_key.get_secret_value(),
                activation_delay=timedelta(seconds=settings.key_activation_delay_seconds),
                longest_token_ttl=timedelta(seconds=longest),
            )
    signs_from = f"{new.activates_at:%Y-%m-%d %H:%M:%S} UTC"
    print(f"new key {new.kid}: in the JWKS now, signs from {signs_from}")
    return 0
