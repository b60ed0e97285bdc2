"""The access benchmark: its hot endpoints in a real service process beside the bare
endpoint (uvicorn, one worker, this machine's PostgreSQL and Redis, a schema of
its own dropped afterwards)."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime

import httpx
from argon2 import PasswordHasher
from sqlalchemy import insert

from services.access.main import SERVICE as ACCESS
from services.access.models import CatalogBook
from services.access.settings import AccessSettings
from shared.clients.db import create_engine, drop_schema, ensure_database
from shared.service.migrations import upgrade
from stories.bench.harness import (
    BENCH_DATABASE_URL,
    Figure,
    median_round,
    run_wrk,
    uvicorn_process,
    wrk_script,
)
from stories.bench.plumbing import measure_bare
from stories.bench.services import BARE, service_env

Measured = tuple[float, str, float, float]


async def bench_access(*, duration: float, connections: int) -> list[Figure]:
    schema = f"bench_access_{uuid.uuid4().hex[:8]}"
    await ensure_database(BENCH_DATABASE_URL)
    await upgrade(ACCESS.migrations, BENCH_DATABASE_URL, schema)
    book = uuid.uuid4()
    engine = create_engine(BENCH_DATABASE_URL, schema=schema)
    async with engine.begin() as connection:
        await connection.execute(
            insert(CatalogBook).values(
                book_id=book,
                title="Bench",
                language="en",
                access="free",
                published=True,
                state_changed_at=datetime.now(UTC),
            )
        )
    await engine.dispose()
    try:
        bare = await asyncio.to_thread(measure_bare, duration=duration, connections=connections)
        rows = await asyncio.to_thread(_measure_access, schema, book, duration, connections)
        verifies = await asyncio.to_thread(_argon2_verifies, duration)
    finally:
        await drop_schema(BENCH_DATABASE_URL, schema)
    decision, me, sign_in = rows
    return [
        Figure("access", BARE, bare[0], "req/s", bare[1], bare[2]),
        Figure("access", ARGON2, verifies, "verify/s"),
        Figure(
            "access", f"POST /v1/auth/login, right password, {SIGN_IN_ACCOUNTS} accounts",
            *sign_in, baseline_of=ARGON2,
        ),
        Figure(
            "access", "POST /v1/decisions (cached)", *decision, baseline_of=BARE,
            target_ratio=0.5, target_p99_ms=25,
        ),
        Figure(
            "access", "GET /v1/users/me (verified token)", *me, baseline_of=BARE,
            target_ratio=0.25, target_p99_ms=50,
        ),
    ]  # fmt: skip


ARGON2 = "one argon2id verify (the platform's parameters), in a loop"
# Sign-ins are spread over many accounts, as a school's morning is: every one
# passes the address, account and pair gates (Redis) and hashes once.
SIGN_IN_ACCOUNTS = 40


def _argon2_verifies(duration: float) -> float:
    """What one core verifies per second at the platform's argon2 parameters: the
    ceiling of sign-ins, which each cost one verify."""
    defaults = AccessSettings.model_fields
    hasher = PasswordHasher(
        time_cost=defaults["password_hash_time_cost"].default,
        memory_cost=defaults["password_hash_memory_kib"].default,
        parallelism=defaults["password_hash_parallelism"].default,
    )
    stored = hasher.hash("bench passphrase 2026")
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < duration:
        hasher.verify(stored, "bench passphrase 2026")
        done += 1
    return done / (time.perf_counter() - started)


def _sign_in_script(emails: list[str], password: str) -> str:
    """A wrk script that signs in as an account picked at random each time."""
    listed = ",".join(json.dumps(e) for e in emails)
    lua = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local emails = {{{listed}}}
request = function()
  local email = emails[math.random(#emails)]
  return wrk.format(nil, nil, nil, '{{"email": "' .. email .. '", "password": "{password}"}}')
end
"""
    handle, script = tempfile.mkstemp(suffix=".lua", prefix="stories-wrk-")
    with os.fdopen(handle, "w") as out:
        out.write(lua)
    return script


def _measure_access(
    schema: str, book: uuid.UUID, duration: float, connections: int
) -> tuple[Measured, Measured, Measured]:
    env = service_env("ACCESS", schema)
    with uvicorn_process(
        "services.access.main:SERVICE.create_app", env, ready_path="/healthz"
    ) as url:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.org"
        password = "bench passphrase 2026"  # noqa: S105 - a throwaway account
        registered = httpx.post(
            f"{url}/v1/auth/register",
            json={
                "email": email,
                "password": password,
                "display_name": "Bench",
                "birth_year": 1990,
            },
            timeout=10,
        )
        registered.raise_for_status()
        tokens = httpx.post(
            f"{url}/v1/auth/login", json={"email": email, "password": password}, timeout=10
        ).json()
        service = httpx.post(
            f"{url}/v1/auth/service-token",
            json={"client_id": "delivery", "client_secret": "dev-delivery-secret"},
            timeout=10,
        ).json()
        decide = wrk_script(
            "/v1/decisions",
            method="POST",
            headers={
                "Authorization": f"Bearer {service['access_token']}",
                "Content-Type": "application/json",
            },
            body=json.dumps(
                {
                    "user_id": registered.json()["id"],
                    "action": "book:read",
                    "resource_id": str(book),
                }
            ),
        )
        me = wrk_script(
            "/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        emails = [
            f"bench-in-{n}-{uuid.uuid4().hex[:6]}@example.org" for n in range(SIGN_IN_ACCOUNTS)
        ]
        for address in emails:
            httpx.post(
                f"{url}/v1/auth/register",
                json={
                    "email": address,
                    "password": password,
                    "display_name": "Reader",
                    "birth_year": 1990,
                },
                timeout=10,
            ).raise_for_status()
        sign_in = _sign_in_script(emails, password)
        try:
            results = []
            endpoints = (
                ("/v1/decisions", decide),
                ("/v1/users/me", me),
                ("/v1/auth/login", sign_in),
            )
            # Warm every endpoint before measuring any: the first seconds of a
            # fresh process (lazy imports, caches filling, first collections)
            # would otherwise land in whichever row runs first.
            for path, script in endpoints:
                run_wrk(f"{url}{path}", seconds=3, connections=connections, script=script)
            for path, script in endpoints:
                rps, p50, p99 = median_round(
                    f"{url}{path}", seconds=duration, connections=connections, script=script
                )
                results.append((rps, "req/s", p50, p99))
        finally:
            os.unlink(decide)
            os.unlink(me)
            os.unlink(sign_in)
    return results[0], results[1], results[2]
