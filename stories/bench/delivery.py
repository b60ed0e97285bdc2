"""The delivery benchmark: its hot endpoints in a real service process beside the bare
endpoint (uvicorn, one worker, this machine's PostgreSQL and Redis, a schema of
its own dropped afterwards)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import insert, text

from services.access.main import SERVICE as ACCESS
from services.access.models import CatalogBook
from services.delivery.main import SERVICE as DELIVERY
from services.delivery.models import PublishedBook
from shared.clients.db import create_engine, drop_schema, ensure_database
from shared.service.migrations import upgrade
from stories.bench.harness import (
    BENCH_DATABASE_URL,
    SERVER_CPU,
    Figure,
    median_round,
    pinned,
    run_wrk,
    uvicorn_process,
    wrk_script,
)
from stories.bench.plumbing import measure_bare
from stories.bench.services import BARE, DELIVERY_BOOKS, service_env


async def bench_delivery(*, duration: float, connections: int) -> list[Figure]:
    """The hot path: a link for a published book, decision cache warm, both signers."""
    suffix = uuid.uuid4().hex[:8]
    access_schema, delivery_schema = f"bench_access_{suffix}", f"bench_delivery_{suffix}"
    await ensure_database(BENCH_DATABASE_URL)
    await upgrade(ACCESS.migrations, BENCH_DATABASE_URL, access_schema)
    await upgrade(DELIVERY.migrations, BENCH_DATABASE_URL, delivery_schema)
    books = [uuid.uuid4() for _ in range(DELIVERY_BOOKS)]
    now = datetime.now(UTC)
    engine = create_engine(BENCH_DATABASE_URL, schema=delivery_schema)
    async with engine.begin() as connection:
        await connection.execute(
            insert(PublishedBook),
            [
                {
                    "book_id": book,
                    "published": True,
                    "object_key": f"books/{book}/1-{uuid.uuid4().hex}.pdf",
                    "object_version": "3HL4kqtJlcpXroDTDmJ",
                    "access": "free",
                    "state_changed_at": now,
                }
                for book in books
            ],
        )
    await engine.dispose()
    engine = create_engine(BENCH_DATABASE_URL, schema=access_schema)
    async with engine.begin() as connection:
        # Access's read model, as content's book.published would leave it.
        await connection.execute(
            insert(CatalogBook),
            [
                {
                    "book_id": book,
                    "title": "Bench",
                    "language": "en",
                    "access": "free",
                    "published": True,
                    "state_changed_at": now,
                }
                for book in books
            ],
        )
    await engine.dispose()
    try:
        bare = await asyncio.to_thread(measure_bare, duration=duration, connections=connections)
        (
            s3,
            cloudfront,
            cloudfront_one,
            cloudfront_unshared,
            uploads,
            opened,
        ) = await asyncio.to_thread(
            _measure_delivery, access_schema, delivery_schema, books, duration, connections
        )
        signing = await asyncio.to_thread(_signing_rates)
    finally:
        await drop_schema(BENCH_DATABASE_URL, access_schema)
        await drop_schema(BENCH_DATABASE_URL, delivery_schema)
    raw_rsa = "one RSA-2048 CloudFront signature, in a loop"
    return [
        Figure("delivery", BARE, bare[0], "req/s", bare[1], bare[2]),
        Figure(
            "delivery", "POST /v1/deliveries, S3 signer (warm)", *s3, baseline_of=BARE,
            target_ratio=0.5, target_p99_ms=25,
        ),
        Figure("delivery", raw_rsa, signing["rsa2048_cloudfront"], "sig/s"),
        Figure(
            "delivery", f"same, CloudFront signer, {DELIVERY_BOOKS:,} books at random", *cloudfront,
            baseline_of=raw_rsa, target_ratio=0.7,
        ),
        Figure(
            "delivery", "same, CloudFront signer, one book (memo hits)", *cloudfront_one,
            baseline_of=raw_rsa,
        ),
        Figure(
            "delivery", f"same, {DELIVERY_BOOKS:,} books, expiry step 1 s (no sharing)",
            *cloudfront_unshared, baseline_of=raw_rsa,
        ),
        Figure("delivery", "one SigV4 presign (botocore), in a loop",
               signing["sigv4_botocore"], "sig/s"),
        Figure("delivery", "one SigV4 presign (ours), in a loop", signing["sigv4_ours"], "sig/s"),
        Figure(
            "delivery",
            f"POST /v1/reading/events, {OFFLINE_EVENTS} events, {OFFLINE_READERS} readers",
            *uploads, baseline_of=BARE,
        ),
        Figure("delivery", "delivery.issued events recorded (all rows)", opened, "events"),
    ]  # fmt: skip


def _signing_rates() -> dict[str, float]:
    result = subprocess.run(
        [*pinned(SERVER_CPU), sys.executable, "-m", "stories.bench.signing"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rates: dict[str, float] = json.loads(result.stdout)
    return rates


def _cloudfront_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


Measured = tuple[float, str, float, float]


def _random_books_script(token: str, books: list[uuid.UUID]) -> str:
    """A wrk script that asks for a link to a book picked at random each time."""
    ids = ",".join(f'"{b}"' for b in books)
    lua = f"""
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["Content-Type"] = "application/json"
local books = {{{ids}}}
request = function()
  local id = books[math.random(#books)]
  return wrk.format(nil, nil, nil, '{{"book_id": "' .. id .. '"}}')
end
"""
    handle, script = tempfile.mkstemp(suffix=".lua", prefix="stories-wrk-")
    with os.fdopen(handle, "w") as out:
        out.write(lua)
    return script


OFFLINE_READERS, OFFLINE_EVENTS = 30, 20


def _offline_script(tokens: list[str], books: list[uuid.UUID]) -> str:
    """A wrk script uploading, per request, what one of many readers read offline:
    an open of a book picked at random, at a random hour of the last ten days, and
    its next page turns, each event with a fresh id (as a device makes them)."""
    listed_tokens = ",".join(json.dumps(t) for t in tokens)
    listed_books = ",".join(f'"{b}"' for b in books)
    lua = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local tokens = {{{listed_tokens}}}
local books = {{{listed_books}}}
local r = math.random
local function id()
  return string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    r(0, 65535), r(0, 65535), r(0, 65535), r(0, 4095), r(32768, 49151),
    r(0, 65535), r(0, 65535), r(0, 65535))
end
local function at(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end
request = function()
  local book = books[r(#books)]
  local started = os.time() - r(3600, 10 * 86400)
  local events = {{string.format(
    '{{"id":"%s","type":"open","book_id":"%s","at":"%s"}}', id(), book, at(started))}}
  for page = 1, {OFFLINE_EVENTS - 1} do
    events[#events + 1] = string.format(
      '{{"id":"%s","type":"progress","book_id":"%s","at":"%s","page":%d,"total_pages":50}}',
      id(), book, at(started + 60 * page), page)
  end
  wrk.headers["Authorization"] = "Bearer " .. tokens[r(#tokens)]
  return wrk.format(nil, nil, nil,
    '{{"device_id":"bench-tablet","events":[' .. table.concat(events, ",") .. ']}}')
end
"""
    handle, script = tempfile.mkstemp(suffix=".lua", prefix="stories-wrk-")
    with os.fdopen(handle, "w") as out:
        out.write(lua)
    return script


def _reader(access_url: str) -> tuple[str, str]:
    """A new reader, signed in: (account id, access token)."""
    email = f"bench-{uuid.uuid4().hex[:10]}@example.org"
    password = "bench passphrase 2026"  # noqa: S105 - a throwaway account
    registered = httpx.post(
        f"{access_url}/v1/auth/register",
        json={"email": email, "password": password, "display_name": "Reader", "birth_year": 1990},
        timeout=10,
    )
    registered.raise_for_status()
    signed = httpx.post(
        f"{access_url}/v1/auth/login", json={"email": email, "password": password}, timeout=10
    )
    signed.raise_for_status()
    return str(registered.json()["id"]), str(signed.json()["access_token"])


def _warm(url: str, token: str, books: list[uuid.UUID]) -> None:
    """One link per book, so every decision and published object is cached."""

    async def warm() -> None:
        limit = asyncio.Semaphore(16)
        async with httpx.AsyncClient(timeout=30) as http:

            async def one(book: uuid.UUID) -> None:
                async with limit:
                    response = await http.post(
                        url,
                        json={"book_id": str(book)},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    response.raise_for_status()

            await asyncio.gather(*(one(b) for b in books))

    asyncio.run(warm())


def _measure_delivery(
    access_schema: str,
    delivery_schema: str,
    books: list[uuid.UUID],
    duration: float,
    connections: int,
) -> tuple[Measured, Measured, Measured, Measured, Measured, float]:
    book = books[0]
    with uvicorn_process(
        "services.access.main:SERVICE.create_app", service_env("ACCESS", access_schema), "/healthz"
    ) as access_url:
        user_id, token = _reader(access_url)
        env = {
            **service_env("DELIVERY", delivery_schema),
            "JWKS_URL": f"{access_url}/.well-known/jwks.json",
            "ACCESS_URL": access_url,
            "DELIVERY_LINKS_PER_MINUTE": "100000000",
            # "Warm": decisions stay cached for the whole run.
            "DECISION_CACHE_SECONDS": "600",
        }
        script = wrk_script(
            "/v1/deliveries",
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            body=json.dumps({"book_id": str(book)}),
        )
        cloudfront_env = {
            **env,
            "DELIVERY_SIGNER": "cloudfront",
            "DELIVERY_CLOUDFRONT_DOMAIN": "https://books.stories.example",
            "DELIVERY_CLOUDFRONT_KEYS": json.dumps(
                [{"key_pair_id": "KBENCH", "private_key": _cloudfront_key()}]
            ),
        }
        random_books = _random_books_script(token, books)
        readers = [_reader(access_url)[1] for _ in range(OFFLINE_READERS)]
        offline = _offline_script(readers, books)
        results: list[Measured] = []
        try:
            # Last, without the shared expiry step: what a signature per request costs.
            every_second = {**cloudfront_env, "DELIVERY_LINK_EXPIRY_STEP_SECONDS": "1"}
            for environment, scripts in (
                (env, [script, offline]),
                (cloudfront_env, [random_books, script]),
                (every_second, [random_books]),
            ):
                with uvicorn_process(
                    "services.delivery.main:SERVICE.create_app", environment, "/healthz"
                ) as url:
                    # The first request decides (asking access) and warms every cache.
                    first = httpx.post(
                        f"{url}/v1/deliveries",
                        json={"book_id": str(book)},
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=10,
                    )
                    assert first.status_code == 200, first.text
                    target = f"{url}/v1/deliveries"
                    if random_books in scripts:
                        _warm(target, token, books)
                    for chosen in scripts:
                        path = "/v1/reading/events" if chosen == offline else "/v1/deliveries"
                        # Warm-up: fills the book and decision caches for every book.
                        run_wrk(f"{url}{path}", seconds=6, connections=connections, script=chosen)
                        rps, p50, p99 = median_round(
                            f"{url}{path}", seconds=duration, connections=connections, script=chosen
                        )
                        results.append((rps, "req/s", p50, p99))
        finally:
            os.unlink(script)
            os.unlink(random_books)
            os.unlink(offline)
    opened = asyncio.run(_count_opened(delivery_schema, user_id))
    s3, uploads, *cloudfront = results
    return s3, cloudfront[0], cloudfront[1], cloudfront[2], uploads, opened


async def _count_opened(schema: str, user_id: str) -> float:
    engine = create_engine(BENCH_DATABASE_URL, schema=schema)
    async with engine.connect() as connection:
        count = await connection.scalar(
            text("SELECT count(*) FROM outbox WHERE event_type = 'delivery.issued'")
        )
    await engine.dispose()
    return float(count or 0)
