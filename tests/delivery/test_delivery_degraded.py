"""Degraded modes of the hot path, decided and tested:

- Redis down: nothing is served from cache (no invalidations could reach it);
  every link is decided from delivery's database (slower, still correct);
- access down: nothing changes, because delivery never asks access for a link;
  it decides from its own read model of books, roles and entitlements.

And the CloudFront signer end to end: links and cookies from the running service
pass the verifier, bound to the caller's address.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.delivery.components import app_components
from services.delivery.main import SERVICE as DELIVERY
from shared.clients.db import drop_schema
from shared.contracts.roles import Role
from shared.resources import resources_of
from shared.service.migrations import upgrade
from tests.delivery.cloudfront_verifier import CloudFrontVerifier, Refused
from tests.harness.access import AccessHarness, Account, running_access_harness
from tests.harness.delivery import DeliveryHarness, delivery_settings, start_delivery
from tests.support import (
    TEST_REDIS_URL,
    ToggleableProxy,
    assert_problem,
    eventually,
    fast_path_answers,
)

# Also run against LocalStack by `make test` (TEST_AWS=localstack pytest -m e2e).
pytestmark = pytest.mark.e2e

CACHE_SECONDS = 1.0


@pytest.fixture(scope="module")
async def access(database_url: str, moto_url: str) -> AsyncIterator[AccessHarness]:
    # Short decision TTLs on both sides, so "until its TTL" fits in a test.
    async with running_access_harness(
        database_url, moto_url, decision_cache_seconds=CACHE_SECONDS
    ) as harness:
        yield harness


@pytest.fixture
async def schema(access: AccessHarness) -> AsyncIterator[str]:
    settings = delivery_settings(access)
    await upgrade(DELIVERY.migrations, settings.database_url, settings.database_schema)
    yield settings.database_schema
    await drop_schema(settings.database_url, settings.database_schema)


async def free_book(access: AccessHarness, delivery: DeliveryHarness) -> uuid.UUID:
    book = await access.put_book(published=True, access="free")
    await delivery.put_published(book, f"books/{book}/1-key.pdf", "v1")
    return book


async def ask(delivery: DeliveryHarness, reader: Account, book: uuid.UUID) -> int:
    response = await delivery.http.post(
        "/v1/deliveries", json={"book_id": str(book)}, headers=reader.headers
    )
    return response.status_code


def redis_proxy_url(proxy: ToggleableProxy) -> str:
    database = urlsplit(TEST_REDIS_URL).path
    return f"redis://127.0.0.1:{proxy.port}{database}"


async def test_with_redis_down_links_are_decided_from_the_database_and_stay_correct(
    access: AccessHarness, schema: str
) -> None:
    parts = urlsplit(TEST_REDIS_URL)
    proxy = ToggleableProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    await proxy.start()
    try:
        settings = delivery_settings(
            access, redis_url=redis_proxy_url(proxy), database_schema=schema
        )
        async with AsyncExitStack() as stack:
            delivery = await start_delivery(stack, settings)
            reader = await access.account(Role.LEARNER)
            book = await free_book(access, delivery)
            assert await ask(delivery, reader, book) == 200  # warm, with Redis
            # The premise: the process holds its full copy of the deny-list (taken
            # once its subscription is up) when Redis goes away.
            denylist = resources_of(delivery.app).denylist
            await eventually(lambda: denylist.synced, timeout=15, what="the deny-list copy")
            proxy.cut()
            bus = resources_of(delivery.app).bus
            await eventually(lambda: not bus.connected, what="the subscription to drop")
            # Without invalidations nothing is served from cache: each answer
            # comes from delivery's database, so it is never stale.
            other = await free_book(access, delivery)
            assert await ask(delivery, reader, other) == 200
            assert await ask(delivery, reader, book) == 200
            paid = await access.put_book(published=True, access="entitled")
            await delivery.put_published(paid, f"books/{paid}/1.pdf", "v1", access="entitled")
            assert await ask(delivery, reader, paid) == 403
            # ... and granted, it opens at once (no stale cache in the way).
            await delivery.put_reader(reader.id, "LEARNER", entitled_to=(paid,))
            assert await ask(delivery, reader, paid) == 200
            proxy.restore()
            await eventually(lambda: bus.connected, what="the subscription to come back")
            assert await ask(delivery, reader, book) == 200
    finally:
        await proxy.stop()


async def test_with_access_stopped_links_are_still_decided_from_the_read_model(
    access: AccessHarness, schema: str
) -> None:
    port = int(access.url.rsplit(":", 1)[1])
    proxy = ToggleableProxy("127.0.0.1", port)
    await proxy.start()
    try:
        settings = delivery_settings(
            access,
            access_url=proxy.url,
            jwks_url=f"{proxy.url}/.well-known/jwks.json",
            database_schema=schema,
        )
        async with AsyncExitStack() as stack:
            delivery = await start_delivery(stack, settings)
            reader = await access.account(Role.LEARNER)
            stranger = await access.account(Role.LEARNER)
            free = await free_book(access, delivery)
            entitled = await access.put_book(published=True, access="entitled")
            await delivery.put_published(
                entitled, f"books/{entitled}/1.pdf", "v1", access="entitled"
            )
            await delivery.put_reader(reader.id, "LEARNER", entitled_to=(entitled,))
            await delivery.put_reader(stranger.id, "LEARNER")
            # The signing keys are fetched once, before access goes away.
            assert await ask(delivery, stranger, free) == 200
            proxy.cut()
            # Never asked before, with access unreachable: decided here, not refused.
            assert await ask(delivery, reader, free) == 200
            assert await ask(delivery, reader, entitled) == 200
            assert await ask(delivery, stranger, entitled) == 403
            opened = [
                e
                for e in await delivery.outbox("delivery.issued")
                if e.data["user_id"] == str(reader.id)
            ]
            assert {e.data["book_id"] for e in opened} == {str(free), str(entitled)}
    finally:
        await proxy.stop()


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


async def test_the_cloudfront_signer_binds_links_and_cookies_to_the_caller(
    access: AccessHarness, schema: str
) -> None:
    old, new = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in "ab")
    settings = delivery_settings(
        access,
        signer="cloudfront",
        cloudfront_domain="https://books.stories.example",
        cloudfront_keys=[
            {"key_pair_id": "KOLD", "private_key": _pem(old)},
            {"key_pair_id": "KNEW", "private_key": _pem(new)},
        ],
        cloudfront_bind_client_ip=True,
        cookie_domain="books.stories.example",
        database_schema=schema,
    )
    verifier = CloudFrontVerifier({"KOLD": old.public_key(), "KNEW": new.public_key()})
    async with AsyncExitStack() as stack:
        delivery = await start_delivery(stack, settings)
        reader = await access.account(Role.LEARNER)
        book = await free_book(access, delivery)
        response = await delivery.http.post(
            "/v1/deliveries", json={"book_id": str(book)}, headers=reader.headers
        )
        assert response.status_code == 200, response.text
        url = response.json()["url"]
        assert response.json()["signer"] == "cloudfront"
        assert url.startswith(f"https://books.stories.example/books/{book}/1-key.pdf?versionId=v1&")
        assert url.endswith("Key-Pair-Id=KNEW")
        now = datetime.now(UTC)
        verifier.verify_url(url, now=now, client_ip="127.0.0.1")  # the test client's address
        with pytest.raises(Refused, match="address"):
            verifier.verify_url(url, now=now, client_ip="198.51.100.9")

        cookies = await delivery.http.post(
            "/v1/deliveries/cookies", json={"book_id": str(book)}, headers=reader.headers
        )
        assert cookies.status_code == 200, cookies.text
        values = cookies.json()["cookies"]
        verifier.verify_cookies(
            f"https://books.stories.example/books/{book}/1-key.pdf",
            values,
            now=now,
            client_ip="127.0.0.1",
        )
        set_cookie = cookies.headers.get_list("set-cookie")
        assert len(set_cookie) == 3
        assert all(
            "HttpOnly" in c and "Secure" in c and f"Path=/books/{book}/" in c for c in set_cookie
        )
        kinds = {e.data["method"] for e in await delivery.outbox("delivery.issued")}
        assert {"cloudfront", "cloudfront-cookies"} <= kinds


async def test_cookies_without_cloudfront_say_so(access: AccessHarness, schema: str) -> None:
    settings = delivery_settings(access, database_schema=schema)
    async with AsyncExitStack() as stack:
        delivery = await start_delivery(stack, settings)
        reader = await access.account(Role.LEARNER)
        book = await free_book(access, delivery)
        response = await delivery.http.post(
            "/v1/deliveries/cookies", json={"book_id": str(book)}, headers=reader.headers
        )
        assert response.status_code == 404  # not a server error: no 5xx alarm
        assert response.json()["type"].endswith("/cookies-not-configured")


async def test_link_issuance_is_rate_limited_per_reader(access: AccessHarness, schema: str) -> None:
    settings = delivery_settings(access, links_per_minute=3, database_schema=schema)
    async with AsyncExitStack() as stack:
        delivery = await start_delivery(stack, settings)
        reader, other = await access.account(Role.LEARNER), await access.account(Role.LEARNER)
        book = await free_book(access, delivery)
        assert [await ask(delivery, reader, book) for _ in range(4)] == [200, 200, 200, 429]
        limited = await delivery.http.post(
            "/v1/deliveries", json={"book_id": str(book)}, headers=reader.headers
        )
        assert 0 < int(limited.headers["Retry-After"]) <= 60
        assert await ask(delivery, other, book) == 200


LINKS, PROGRESS, READING_LIST = "/v1/deliveries", "/v1/reading/{book_id}/progress", "/v1/reading/me"


async def test_the_fast_path_answers_well_formed_requests_like_the_endpoint(
    access: AccessHarness, schema: str
) -> None:
    settings = delivery_settings(access, database_schema=schema)
    async with AsyncExitStack() as stack:
        delivery = await start_delivery(stack, settings)
        reader = await access.account(Role.LEARNER)
        await delivery.put_reader(reader.id, "LEARNER")
        book = await free_book(access, delivery)
        paid = await access.put_book(published=True, access="entitled")
        await delivery.put_published(paid, f"books/{paid}/1.pdf", "v1", access="entitled")
        url = "/v1/deliveries"
        # The very first request of a token is answered here too (a cold process).
        cold = await delivery.http.post(url, json={"book_id": str(book)}, headers=reader.headers)
        warm = await delivery.http.post(url, json={"book_id": str(book)}, headers=reader.headers)
        assert cold.status_code == warm.status_code == 200
        assert await fast_path_answers(delivery.http, "POST", LINKS, 200) == 2
        assert cold.json().keys() == warm.json().keys() == {"url", "expires_at", "method", "signer"}
        assert "x-request-id" in warm.headers
        assert datetime.fromisoformat(warm.json()["expires_at"]) > datetime.now(UTC)
        # Refusals of well-formed requests: the endpoint's problems, from here.
        denied = await delivery.http.post(url, json={"book_id": str(paid)}, headers=reader.headers)
        assert denied.status_code == 403
        assert denied.json()["type"].endswith("/decision-denied")
        missing = await delivery.http.post(
            url, json={"book_id": str(uuid.uuid4())}, headers=reader.headers
        )
        assert_problem(missing, 404)
        forged = await delivery.http.post(
            url, json={"book_id": str(book)}, headers={"Authorization": "Bearer not.a.token"}
        )
        assert forged.status_code == 401
        assert forged.headers["www-authenticate"].startswith("Bearer")
        # Answered here too, with the endpoint's problems.
        assert await fast_path_answers(delivery.http, "POST", LINKS, 403) == 1
        assert await fast_path_answers(delivery.http, "POST", LINKS, 404) == 1
        assert await fast_path_answers(delivery.http, "POST", LINKS, 401) == 1
        # A page turn, well formed, is answered here with ProgressOut's shape.
        turned = await delivery.http.put(
            f"/v1/reading/{book}/progress",
            json={"page": 3, "total_pages": 12},
            headers=reader.headers,
        )
        assert turned.status_code == 200, turned.text
        assert await fast_path_answers(delivery.http, "PUT", PROGRESS, 200) == 1
        assert turned.json()["percent"] == 25
        assert set(turned.json()) == {
            "book_id", "page", "total_pages", "percent", "started_at", "updated_at", "completed_at"
        }  # fmt: skip
        # Odd input goes to the endpoint, whose validation answers it.
        for bad in ({"book_id": str(book), "extra": 1}, {"book_id": 7}, ["x"]):
            response = await delivery.http.post(url, json=bad, headers=reader.headers)
            assert response.status_code == 422, (bad, response.text)
        for odd in ({"page": True, "total_pages": 12}, {"page": "3", "total_pages": 12}):
            response = await delivery.http.put(
                f"/v1/reading/{book}/progress", json=odd, headers=reader.headers
            )
            assert response.status_code == 422, (odd, response.text)
        deep = b'{"book_id":' + b"[" * 1000 + b"]" * 1000 + b"}"
        nested = await delivery.http.post(
            url, content=deep, headers={**reader.headers, "Content-Type": "application/json"}
        )
        assert nested.status_code == 400, nested.text  # FastAPI's "cannot parse the body"
        # The reading list, plain or with a limit, is answered here; the endpoint's
        # shape (a JSON array of ProgressOut) and its validation for anything odd.
        listed = await delivery.http.get("/v1/reading/me", headers=reader.headers)
        limited = await delivery.http.get("/v1/reading/me?limit=1", headers=reader.headers)
        assert listed.status_code == limited.status_code == 200, listed.text
        assert listed.json() == limited.json() == [turned.json()]
        for query in ("limit=0", "limit=101", "limit=x", "limit=-1"):
            response = await delivery.http.get(f"/v1/reading/me?{query}", headers=reader.headers)
            assert response.status_code == 422, (query, response.text)
        anonymous = await delivery.http.get("/v1/reading/me")
        assert anonymous.status_code == 401
        # Odd input went to the endpoint: the fast path's own answers are unchanged.
        assert await fast_path_answers(delivery.http, "POST", LINKS, 200) == 2
        assert await fast_path_answers(delivery.http, "PUT", PROGRESS) == 1
        assert await fast_path_answers(delivery.http, "GET", READING_LIST) == 2
        # A logged-out token is refused even though it was verified before.
        out = await access.http.post("/v1/auth/logout", headers=reader.headers)
        assert out.status_code == 204

        async def refused() -> bool:
            response = await delivery.http.post(
                url, json={"book_id": str(book)}, headers=reader.headers
            )
            return response.status_code == 401

        await eventually(refused, timeout=5, what="the deny-list to reach delivery")
        opened = [
            e
            for e in await delivery.outbox("delivery.issued")
            if e.data["user_id"] == str(reader.id)
        ]
        assert len(opened) == 2


async def test_a_new_process_starts_with_every_book_and_reader_in_its_caches(
    access: AccessHarness, schema: str
) -> None:
    settings = delivery_settings(access, database_schema=schema)
    async with AsyncExitStack() as stack:
        first = await start_delivery(stack, settings)
        reader = await access.account(Role.LEARNER)
        book = await free_book(access, first)
        paid = await access.put_book(published=True, access="entitled")
        await first.put_published(paid, f"books/{paid}/1.pdf", "v1", access="entitled")
        await first.put_reader(reader.id, "LEARNER", entitled_to=(paid,))
        # A deploy: a new process, which must not meet its first readers cold.
        second = await start_delivery(stack, settings)
        parts = app_components(second.app).links.parts
        assert parts.books.get(book) is not None
        paid_object = parts.books.get(paid)
        assert paid_object is not None
        assert paid_object.access == "entitled"
        facts = parts.readers.get(reader.id)
        assert facts is not None
        assert paid in facts.entitlements
        assert await fast_path_answers(second.http, "POST", LINKS) == 0
        response = await second.http.post(
            "/v1/deliveries", json={"book_id": str(paid)}, headers=reader.headers
        )
        assert response.status_code == 200, response.text
        assert await fast_path_answers(second.http, "POST", LINKS, 200) == 1
