"""Service benchmarks: hot endpoints of a real service process beside the bare endpoint.

Each service runs under uvicorn with one worker against this machine's
PostgreSQL and Redis, in a schema of its own that is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import insert, text

from services.access.main import SERVICE as ACCESS
from services.access.models import CatalogBook
from services.content.main import SERVICE as CONTENT
from services.content.models import Book
from services.delivery.main import SERVICE as DELIVERY
from services.delivery.models import PublishedBook
from shared.db import create_engine, drop_schema, ensure_database
from shared.migrations import upgrade
from stories.bench import (
    BENCH_DATABASE_URL,
    SERVER_CPU,
    Figure,
    interleaved_rounds,
    measure_bare,
    median_round,
    pinned,
    run_wrk,
    uvicorn_process,
    wrk_script,
)

DELIVERY_BOOKS = 2_000
# Database 12: the tests use 14 and 15 and the load test 13, so a benchmark can run
# beside `make test` (as #16 asks) without either flushing the other's keys.
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
BARE = "bare endpoint (plain FastAPI)"


def service_env(prefix: str, schema: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "development",
        f"{prefix}_DATABASE_URL": BENCH_DATABASE_URL,
        f"{prefix}_DATABASE_SCHEMA": schema,
        "REDIS_URL": BENCH_REDIS_URL,
        # The hot paths make no AWS call; the clients only need an address.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "LOG_LEVEL": "WARNING",
    }


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
    finally:
        await drop_schema(BENCH_DATABASE_URL, schema)
    decision, me = rows
    return [
        Figure("access", BARE, bare[0], "req/s", bare[1], bare[2]),
        Figure(
            "access", "POST /v1/decisions (cached)", *decision, baseline_of=BARE,
            target_ratio=0.5, target_p99_ms=25,
        ),
        Figure(
            "access", "GET /v1/users/me (verified token)", *me, baseline_of=BARE,
            target_ratio=0.25, target_p99_ms=50,
        ),
    ]  # fmt: skip


def _measure_access(
    schema: str, book: uuid.UUID, duration: float, connections: int
) -> tuple[tuple[float, str, float, float], tuple[float, str, float, float]]:
    env = service_env("ACCESS", schema)
    with uvicorn_process(
        "services.access.main:SERVICE.create_app", env, ready_path="/healthz"
    ) as url:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.org"
        password = "bench passphrase 2026"  # noqa: S105 - a throwaway account
        registered = httpx.post(
            f"{url}/v1/auth/register",
            json={"email": email, "password": password, "display_name": "Bench"},
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
        try:
            results = []
            endpoints = (("/v1/decisions", decide), ("/v1/users/me", me))
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
    return results[0], results[1]


CATALOG_BOOKS = 10_000
CATALOG_LANGUAGES = ["en", "sw", "fr", "pt-BR", "ar"]
CATALOG_CATEGORIES = ["animals", "family", "science", "adventure", "friendship"]


async def bench_content(*, duration: float, connections: int) -> list[Figure]:
    """The public catalog: a filtered page of 20 out of 10,000 published books."""
    schema = f"bench_content_{uuid.uuid4().hex[:8]}"
    await ensure_database(BENCH_DATABASE_URL)
    await upgrade(CONTENT.migrations, BENCH_DATABASE_URL, schema)
    engine = create_engine(BENCH_DATABASE_URL, schema=schema)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "id": uuid.uuid4(),
            "submission_id": uuid.uuid4(),
            "title": f"Story {n}",
            "summary": f"A story about {CATALOG_CATEGORIES[n % 5]} number {n}.",
            "language": CATALOG_LANGUAGES[n % 5],
            "age_min": n % 8,
            "age_max": n % 8 + 4,
            "category": CATALOG_CATEGORIES[(n // 5) % 5],
            "reading_level": ["emergent", "early", "transitional", "fluent"][n % 4],
            "access": "free" if n % 2 else "entitled",
            "status": "PUBLISHED",
            "version": 2,
            "source_key": f"manuscripts/{n}/m.pdf",
            "edition": 1,
            "object_key": f"books/{n}/1-k.pdf",
            "object_version": "v1",
            "created_by": uuid.uuid4(),
            "created_at": start,
            "updated_at": start,
            "published_at": start + timedelta(minutes=n),
        }
        for n in range(CATALOG_BOOKS)
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(Book), rows)
        await connection.execute(text("ANALYZE books"))
    await engine.dispose()
    try:
        bare = await asyncio.to_thread(measure_bare, duration=duration, connections=connections)
        uncached = await asyncio.to_thread(_measure_catalog, schema, duration, connections, 0.0)
        cached, *traced = await asyncio.to_thread(
            _measure_tracing, schema, duration, connections, TRACING_RATIOS
        )
    finally:
        await drop_schema(BENCH_DATABASE_URL, schema)
    cached_row = f"GET {CATALOG_PATH} (cached)"
    return [
        Figure("content", BARE, bare[0], "req/s", bare[1], bare[2]),
        Figure(
            "content", cached_row, *cached, baseline_of=BARE,
            target_ratio=0.3, target_p99_ms=50,
        ),
        Figure(
            "content", "same, cache off: PostgreSQL every request", *uncached, baseline_of=BARE,
        ),
        # #15: tracing, as deployed, may cost at most 10 % of a cached endpoint's
        # throughput. The other two rows bound it: what tracing costs a request it
        # does not sample, and what a kept span costs (every request, as compose runs).
        Figure(
            "content", "cached, tracing on: none sampled", *traced[0],
            baseline_of=cached_row,
        ),
        Figure(
            "content", "cached, tracing on: 1 in 20 (as deployed)", *traced[1],
            baseline_of=cached_row, target_ratio=0.9,
        ),
        Figure(
            "content", "cached, tracing on: every request traced", *traced[2],
            baseline_of=cached_row,
        ),
    ]  # fmt: skip


@dataclass
class OtlpSink:
    """A stand-in collector: takes OTLP/HTTP exports and counts them (the spans
    really leave the server, as they would for the ADOT sidecar)."""

    url: str
    requests: int = 0
    bytes: int = 0


@contextlib.contextmanager
def otlp_sink() -> Iterator[OtlpSink]:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    sink = OtlpSink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", 0))
            self.rfile.read(size)
            sink.requests += 1
            sink.bytes += size
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()


CATALOG_PATH = "/v1/books?language=sw&limit=20"


# Tracing off, then on at these sampling ratios (none, as deployed, every request).
TRACING_RATIOS = (0.0, 0.05, 1.0)
# The tracing rows differ by a few per cent: more rounds, taken in turns.
TRACING_ROUNDS = 5


@contextlib.contextmanager
def _catalog_server(
    schema: str, cache_seconds: float, *, tracing: tuple[str, float] | None = None
) -> Iterator[str]:
    """Content serving the seeded catalog: checked, warmed, ready to measure."""
    env = service_env("CONTENT", schema)
    env["CONTENT_CATALOG_CACHE_SECONDS"] = str(cache_seconds)
    if tracing is not None:
        endpoint, ratio = tracing
        env |= {
            "TRACING_EXPORTER": "otlp",
            "TRACING_SAMPLE_RATIO": str(ratio),
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        }
    with uvicorn_process(
        "services.content.main:SERVICE.create_app", env, ready_path="/healthz"
    ) as url:
        page = httpx.get(f"{url}{CATALOG_PATH}", timeout=10)
        page.raise_for_status()
        assert len(page.json()["items"]) == 20, page.text
        run_wrk(f"{url}{CATALOG_PATH}", seconds=3, connections=32)  # warm up
        yield url


def _measure_catalog(
    schema: str, duration: float, connections: int, cache_seconds: float
) -> tuple[float, str, float, float]:
    with _catalog_server(schema, cache_seconds) as url:
        rps, p50, p99 = median_round(
            f"{url}{CATALOG_PATH}", seconds=duration, connections=connections
        )
    return rps, "req/s", p50, p99


def _measure_tracing(
    schema: str, duration: float, connections: int, ratios: tuple[float, ...]
) -> list[tuple[float, str, float, float]]:
    """The cached catalog with tracing off and at each ratio, all serving at once
    and measured in turns, spans leaving for a stand-in collector."""
    with otlp_sink() as sink, contextlib.ExitStack() as servers:
        urls = [servers.enter_context(_catalog_server(schema, 60.0))] + [
            servers.enter_context(_catalog_server(schema, 60.0, tracing=(sink.url, ratio)))
            for ratio in ratios
        ]
        measured = interleaved_rounds(
            [f"{url}{CATALOG_PATH}" for url in urls],
            seconds=duration, connections=connections, rounds=TRACING_ROUNDS,
        )  # fmt: skip
    print(f"  the OTLP sink received {sink.requests:,} exports, {sink.bytes:,} bytes of spans")
    return [(rps, "req/s", p50, p99) for rps, p50, p99 in measured]


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
        s3, cloudfront, cloudfront_one, cloudfront_unshared, opened = await asyncio.to_thread(
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
        Figure("delivery", "delivery.issued events recorded (all rows)", opened, "events"),
    ]  # fmt: skip


def _signing_rates() -> dict[str, float]:
    result = subprocess.run(
        [*pinned(SERVER_CPU), sys.executable, "-m", "stories.bench_signing"],
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
) -> tuple[Measured, Measured, Measured, Measured, float]:
    book = books[0]
    with uvicorn_process(
        "services.access.main:SERVICE.create_app", service_env("ACCESS", access_schema), "/healthz"
    ) as access_url:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.org"
        password = "bench passphrase 2026"  # noqa: S105 - a throwaway account
        user = httpx.post(
            f"{access_url}/v1/auth/register",
            json={"email": email, "password": password, "display_name": "Bench"},
            timeout=10,
        ).json()
        token = httpx.post(
            f"{access_url}/v1/auth/login", json={"email": email, "password": password}, timeout=10
        ).json()["access_token"]
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
        results: list[Measured] = []
        try:
            # Last, without the shared expiry step: what a signature per request costs.
            every_second = {**cloudfront_env, "DELIVERY_LINK_EXPIRY_STEP_SECONDS": "1"}
            for environment, scripts in (
                (env, [script]),
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
                    if len(scripts) > 1:
                        _warm(target, token, books)
                    for chosen in scripts:
                        # Warm-up: fills the book and decision caches for every book.
                        run_wrk(target, seconds=6, connections=connections, script=chosen)
                        rps, p50, p99 = median_round(
                            target, seconds=duration, connections=connections, script=chosen
                        )
                        results.append((rps, "req/s", p50, p99))
        finally:
            os.unlink(script)
            os.unlink(random_books)
    opened = asyncio.run(_count_opened(delivery_schema, user["id"]))
    return results[0], results[1], results[2], results[3], opened


async def _count_opened(schema: str, user_id: str) -> float:
    engine = create_engine(BENCH_DATABASE_URL, schema=schema)
    async with engine.connect() as connection:
        count = await connection.scalar(
            text("SELECT count(*) FROM outbox WHERE event_type = 'delivery.issued'")
        )
    await engine.dispose()
    return float(count or 0)
