"""Operating the access service: the first admin, and what the API documents."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import httpx
from sqlalchemy import select

from services.access.components import app_components
from services.access.main import SERVICE
from services.access.models import User
from shared.contracts.roles import Role
from tests.harness.access import AccessHarness, access_settings, running_access
from tests.support import ThreadedServer


def cli_env(access: AccessHarness) -> dict[str, str]:
    settings = access.settings
    return {
        **os.environ,
        "ENVIRONMENT": "test",
        "ACCESS_DATABASE_URL": settings.database_url,
        "ACCESS_DATABASE_SCHEMA": settings.database_schema,
        "REDIS_URL": settings.redis_url,
        "AWS_ENDPOINT_URL": settings.aws_endpoint_url or "",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }


async def run_cli(access: AccessHarness, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stories.cli", *args],
        env=cli_env(access),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def role_of(access: AccessHarness, email: str) -> str | None:
    async with access.resources.session_factory() as session:
        return await session.scalar(select(User.role).where(User.email == email))


async def test_create_admin_makes_the_first_admin_from_the_command_line(
    access: AccessHarness,
) -> None:
    email = f"root-{uuid.uuid4().hex[:6]}@example.org"
    result = await run_cli(
        access, "create-admin", "--email", email, "--password", "a long admin passphrase"
    )
    assert result.returncode == 0, result.stderr
    assert await role_of(access, email) == "ADMIN"
    login = await access.login(email, "a long admin passphrase")
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await access.http.get("/v1/users", headers=headers)).status_code == 200


async def test_create_admin_still_applies_the_password_policy(access: AccessHarness) -> None:
    email = f"root-{uuid.uuid4().hex[:6]}@example.org"
    result = await run_cli(access, "create-admin", "--email", email, "--password", "short")
    assert result.returncode == 1
    assert "at least 10 characters" in result.stdout
    assert await role_of(access, email) is None


async def test_the_first_admin_can_come_from_settings_at_start_up(
    database_url: str, moto_url: str, access: AccessHarness
) -> None:
    email = f"boot-{uuid.uuid4().hex[:6]}@example.org"
    settings = access_settings(
        database_url,
        moto_url,
        database_schema=access.settings.database_schema,
        bootstrap_admin_email=email,
        bootstrap_admin_password="a long admin passphrase",
    )
    with running_access(settings):
        pass
    assert await role_of(access, email) == Role.ADMIN.value


async def test_every_route_documents_its_errors_and_its_security(access: AccessHarness) -> None:
    document = (await access.http.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    undocumented, unsecured = [], []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            if path in ("/healthz", "/readyz", "/.well-known/jwks.json"):
                continue
            errors = [
                status
                for status, response in operation["responses"].items()
                if status.startswith("4") and "application/problem+json" in response["content"]
            ]
            if not operation.get("summary") or not errors:
                undocumented.append(name)
            public = path.startswith("/v1/auth/") and not path.endswith("/logout")
            if not public and operation.get("security") != [{"bearer": []}]:
                unsecured.append(name)
    assert undocumented == []
    assert unsecured == []


async def test_the_docs_page_is_served(access: AccessHarness) -> None:
    async with httpx.AsyncClient(base_url=access.url) as http:
        page = await http.get("/docs")
    assert page.status_code == 200
    assert "swagger" in page.text.lower()


async def test_a_new_access_process_starts_with_every_profile_cached(
    access: AccessHarness,
) -> None:
    reader = await access.account(Role.LEARNER)
    app = SERVICE.create_app(access.settings)
    with ThreadedServer(app) as server:
        # A deploy: before any request, the profile is already in memory.
        components = app_components(app)
        cached = components.profiles.get(reader.id)
        assert cached is not None
        assert json.loads(cached)["email"] == reader.email
        async with httpx.AsyncClient(base_url=server.url) as http:
            me = await http.get("/v1/users/me", headers=reader.headers)
        assert me.status_code == 200
        assert me.content == cached
