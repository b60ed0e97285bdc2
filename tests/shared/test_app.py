"""The app factory over real HTTP: problem+json, request ids, metrics, readiness,
the unit-of-work session, and JWT verification against a JWKS URL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import func, select, text

from shared.bus.outbox import OutboxMessage, record_event
from shared.contracts.events import BookUnpublished, Producer
from shared.contracts.roles import Role
from shared.http.auth import CurrentPrincipal, Principal, require_role
from shared.http.problems import Conflict, ServiceUnavailable
from shared.resources import Resources, SessionDep
from shared.service.app import create_service_app
from shared.service.idempotency import OnceDep
from shared.settings import ServiceSettings
from tests.support import ThreadedServer, assert_problem, eventually

ISSUER, AUDIENCE = "stories-access", "stories"


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        algo = (
            jwt.algorithms.RSAAlgorithm
            if self.algorithm == "RS256"
            else jwt.algorithms.OKPAlgorithm
        )
        data: dict[str, Any] = algo.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(uuid.uuid4()),
            "role": "LEARNER",
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid})


RSA_KEY = SigningKey(
    "rsa-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)
)
ED_KEY = SigningKey("ed-1", "EdDSA", ed25519.Ed25519PrivateKey.generate())
STRANGER_KEY = SigningKey(
    "rsa-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)
)


class JwksEndpoint:
    def __init__(self) -> None:
        self.keys = [RSA_KEY, ED_KEY]
        self.fetches = 0
        self.app = FastAPI()

        @self.app.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            self.fetches += 1
            return {"keys": [k.jwk() for k in self.keys]}


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksEndpoint]:
    endpoint = JwksEndpoint()
    with ThreadedServer(endpoint.app) as server:
        endpoint.url = f"{server.url}/.well-known/jwks.json"  # type: ignore[attr-defined]
        yield endpoint


def sample_router() -> APIRouter:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def get_thing(thing_id: int) -> dict[str, int]:
        return {"thing_id": thing_id}

    @router.post("/things", status_code=201)
    async def create_thing(session: SessionDep) -> dict[str, str]:
        envelope = record_event(session, BookUnpublished(book_id=uuid.uuid4()))
        return {"event_id": str(envelope.id)}

    @router.get("/things")  # a second route on the same path, after the first
    async def list_things() -> list[int]:
        return []

    @router.post("/things/conflicting")
    async def create_conflicting_thing(session: SessionDep) -> None:
        record_event(session, BookUnpublished(book_id=uuid.uuid4()))
        raise Conflict("That thing already exists.")

    @router.get("/slow-db")
    async def slow_db(session: SessionDep) -> dict[str, str]:
        await session.execute(text("SELECT pg_sleep(1.5)"))
        return {"status": "slept"}

    @router.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    @router.get("/unavailable")
    async def unavailable() -> None:
        raise ServiceUnavailable("Token revocation cannot be checked right now.")

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret connection string postgres://admin:hunter2@db")

    @router.post("/once/{thing_id}")
    async def once_thing(thing_id: int, session: SessionDep, once: OnceDep) -> Any:
        async def work() -> dict[str, Any]:
            return {"thing_id": thing_id, "same_session": once.session is session}

        return await once.respond(None, work)

    @router.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str]:
        return {"subject": principal.subject, "role": principal.role.value}

    @router.get("/admin")
    async def admin(
        principal: Annotated[Principal, Depends(require_role(Role.ADMIN))],
    ) -> dict[str, str]:
        return {"subject": principal.subject}

    return router


@pytest.fixture
async def client(
    resources: Resources, settings: ServiceSettings, jwks: JwksEndpoint
) -> AsyncIterator[httpx.AsyncClient]:
    app_settings = settings.model_copy(update={"jwks_url": jwks.url})  # type: ignore[attr-defined]
    app = create_service_app(
        app_settings,
        title="sample",
        description="a service that exists only in tests",
        routers=[sample_router()],
        produces=Producer.CONTENT,
    )
    with ThreadedServer(app) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            yield http


async def outbox_rows(resources: Resources) -> int:
    async with resources.session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


async def test_health_and_readiness_answer(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}

    async def fully_ready() -> bool:  # the mirrors subscribe just after start
        return bool((await client.get("/readyz")).json()["status"] == "ready")

    await eventually(fully_ready, timeout=10, what="ready")
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "redis": "ok",
        "redis_mirrors": "ok",
        "aws": "ok",
    }


async def test_readiness_says_degraded_but_stays_ready_when_redis_is_down(
    resources: Resources, settings: ServiceSettings
) -> None:
    # Every process shares the one Redis: taking them all out of the load balancer
    # for a cache outage would turn degraded answers into none (#14).
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    app = create_service_app(
        broken, title="t", description="t", routers=[], produces=Producer.CONTENT
    )
    with ThreadedServer(app) as server:
        response = httpx.get(f"{server.url}/readyz", timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "degraded"
    assert body["degraded"] == ["redis", "redis_mirrors"]
    assert body["checks"]["redis"].startswith("failing")
    assert body["checks"]["database"] == "ok"


async def test_readiness_fails_with_problem_json_when_the_database_is_down(
    resources: Resources, settings: ServiceSettings
) -> None:
    broken = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"}
    )
    app = create_service_app(
        broken, title="t", description="t", routers=[], produces=Producer.CONTENT
    )
    with ThreadedServer(app) as server:
        response = httpx.get(f"{server.url}/readyz", timeout=10)
    body = assert_problem(response, 503)
    assert body["checks"]["database"].startswith("failing")


async def test_the_docs_and_their_assets_are_served_by_the_service(
    client: httpx.AsyncClient,
) -> None:
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = (await client.get(page)).text
        assert f"/docs-assets/{asset}" in html
        assert "cdn." not in html  # nothing from a CDN
        served = await client.get(f"/docs-assets/{asset}")
        assert served.status_code == 200
        assert "javascript" in served.headers["content-type"]


async def test_unknown_routes_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nowhere"), 404)
    assert_problem(await client.delete("/things/1"), 405)


async def test_a_405_allows_every_method_the_path_answers(client: httpx.AsyncClient) -> None:
    # Two routes share /things; Starlette alone names only the first one's methods.
    for method in ("OPTIONS", "DELETE", "PATCH"):
        response = await client.request(method, "/things")
        assert_problem(response, 405)
        assert response.headers["allow"] == "GET, HEAD, POST"
    response = await client.request("PUT", "/things/1")
    assert response.headers["allow"] == "GET, HEAD"
    # Spelled out, a path is its own resource, though /things/{thing_id} matches it too.
    response = await client.request("PUT", "/things/conflicting")
    assert response.headers["allow"] == "POST"


async def test_validation_errors_are_problems_that_name_the_field(
    client: httpx.AsyncClient,
) -> None:
    body = assert_problem(await client.get("/things/not-a-number"), 422)
    assert body["errors"][0]["location"] == ["path", "thing_id"]
    assert "thing_id" in body["detail"]


async def test_unexpected_errors_leak_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/boom", headers={"X-Request-ID": "trace-me-123", "Origin": "http://localhost:3000"}
    )
    body = assert_problem(response, 500, "internal-error")
    assert "hunter2" not in response.text
    assert body["request_id"] == "trace-me-123"
    # The frontend can read it (CORS) and quote the id from the header as well.
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert response.headers["x-request-id"] == "trace-me-123"


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "a b\tc<script>"})
    assert unsafe.headers["x-request-id"] != "a b\tc<script>"


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    for thing in (1, 2, 3):
        await client.get(f"/things/{thing}")
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/things/{thing_id}",status="200"} 3.0' in text
    assert "outbox_pending_events" in text
    assert "/things/1" not in text


async def test_cors_preflight_allows_the_frontend_origin(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/things/1",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "Authorization, If-Match",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "PATCH" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-credentials"] == "true"


async def test_cors_answers_the_frontend_origin_and_exposes_etag(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/things/1", headers={"Origin": "http://localhost:3000"})
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "ETag" in response.headers["access-control-expose-headers"]
    assert "Origin" in response.headers["vary"]


async def test_the_usual_dev_servers_are_allowed_by_default(client: httpx.AsyncClient) -> None:
    """#16.7: a preflight from Vite's dev server (5173) got a 405 with the defaults."""
    for origin in ("http://localhost:5173", "http://127.0.0.1:5173", "http://localhost:4173"):
        response = await client.options(
            "/things/1",
            headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
        )
        assert response.status_code == 204, (origin, response.text)
        assert response.headers["access-control-allow-origin"] == origin


async def test_cors_grants_nothing_to_other_origins(client: httpx.AsyncClient) -> None:
    response = await client.get("/things/1", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = await client.options(
        "/things/1",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"},
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_answers_are_not_sniffed_and_personal_ones_are_not_stored(
    client: httpx.AsyncClient,
) -> None:
    """#13.15: nosniff on every answer; no-store on every answer to a signed-in caller
    (personal data), unless the route set its own caching."""
    anonymous = await client.get("/things/7")
    assert anonymous.headers["x-content-type-options"] == "nosniff"
    assert "cache-control" not in anonymous.headers
    token = RSA_KEY.token()
    mine = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert mine.status_code == 200
    assert mine.headers["x-content-type-options"] == "nosniff"
    assert mine.headers["cache-control"] == "no-store"
    refused = await client.get("/me", headers={"Authorization": "Bearer nope"})
    assert refused.headers["cache-control"] == "no-store"
    assert refused.headers["x-content-type-options"] == "nosniff"


async def test_cors_preflight_refuses_headers_it_does_not_allow(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options(
        "/things/1",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "X-Forged-Role",
        },
    )
    assert response.status_code == 403
    assert "access-control-allow-headers" not in response.headers


async def test_the_session_commits_the_events_of_a_successful_request(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    response = await client.post("/things")
    assert response.status_code == 201
    assert await outbox_rows(resources) == 1


async def test_the_session_rolls_back_the_events_of_a_failed_request(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    body = assert_problem(await client.post("/things/conflicting"), 409)
    assert body["detail"] == "That thing already exists."
    assert await outbox_rows(resources) == 0


@pytest.mark.parametrize("key", [RSA_KEY, ED_KEY], ids=["RS256", "EdDSA"])
async def test_a_valid_token_identifies_the_caller(
    client: httpx.AsyncClient, key: SigningKey
) -> None:
    subject = str(uuid.uuid4())
    response = await client.get(
        "/me", headers={"Authorization": f"Bearer {key.token(sub=subject, role='TEACHER')}"}
    )
    assert response.json() == {"subject": subject, "role": "TEACHER"}


def _tampered() -> str:
    header, payload, signature = RSA_KEY.token().split(".")
    claims = jwt.utils.base64url_decode(payload).replace(b"LEARNER", b"ADMIN\x20\x20")
    return ".".join([header, jwt.utils.base64url_encode(claims).decode(), signature])


def _alg_none() -> str:
    return jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "role": "ADMIN", "exp": time.time() + 60},
        key="",
        algorithm="none",
        headers={"kid": RSA_KEY.kid},
    )


def _hmac_with_public_key() -> str:
    # The classic confusion attack: HS256 "signed" with the published RSA key.
    return jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "role": "ADMIN", "exp": time.time() + 60},
        key="not-the-private-key-but-long-enough-for-hs256",
        algorithm="HS256",
        headers={"kid": RSA_KEY.kid},
    )


BAD_TOKENS = {
    "expired": lambda: RSA_KEY.token(exp=int(time.time()) - 120, iat=int(time.time()) - 600),
    "wrong audience": lambda: RSA_KEY.token(aud="someone-else"),
    "wrong issuer": lambda: RSA_KEY.token(iss="https://evil.example"),
    "unknown key": lambda: SigningKey("rsa-9", "RS256", STRANGER_KEY.private).token(),
    "foreign key, known kid": lambda: STRANGER_KEY.token(),
    "alg none": _alg_none,
    "hmac confusion": _hmac_with_public_key,
    "tampered": _tampered,
    "missing jti": lambda: RSA_KEY.token(jti=None),
    "unknown role": lambda: RSA_KEY.token(role="EMPEROR"),
    "garbage": lambda: "not.a.jwt",
}


@pytest.mark.parametrize("make_token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_tokens_are_rejected_with_401_problem_json(
    client: httpx.AsyncClient, make_token: Any
) -> None:
    response = await client.get("/me", headers={"Authorization": f"Bearer {make_token()}"})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_no_token_is_401(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/me"), 401)


async def test_a_denied_token_is_rejected(client: httpx.AsyncClient, resources: Resources) -> None:
    token = RSA_KEY.token()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (
        await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200
    # The denial is written by another instance (the test's own resources), so
    # the app learns of it over pub/sub: within a second, not necessarily before
    # the next request leaves this process.
    await resources.denylist.deny(claims["jti"], resources_expiry(claims))

    async def refused() -> bool:
        response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        return response.status_code == 401

    await eventually(refused, timeout=1.0, what="the other instance to refuse the token")
    assert_problem(await client.get("/me", headers={"Authorization": f"Bearer {token}"}), 401)


def resources_expiry(claims: dict[str, Any]) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(claims["exp"], UTC)


async def test_a_lower_role_is_forbidden_and_a_higher_one_allowed(
    client: httpx.AsyncClient,
) -> None:
    teacher = RSA_KEY.token(role="TEACHER")
    admin = RSA_KEY.token(role="ADMIN")
    assert_problem(await client.get("/admin", headers={"Authorization": f"Bearer {teacher}"}), 403)
    assert (
        await client.get("/admin", headers={"Authorization": f"Bearer {admin}"})
    ).status_code == 200


async def test_unknown_key_ids_refetch_the_jwks_at_most_once_per_interval(
    client: httpx.AsyncClient, jwks: JwksEndpoint
) -> None:
    await client.get("/me", headers={"Authorization": f"Bearer {RSA_KEY.token()}"})
    before = jwks.fetches
    for n in range(20):
        forged = SigningKey(f"random-{n}", "RS256", STRANGER_KEY.private).token()
        await client.get("/me", headers={"Authorization": f"Bearer {forged}"})
    assert jwks.fetches - before <= 1


async def test_a_rotated_in_key_is_picked_up_without_a_restart(
    resources: Resources, settings: ServiceSettings, jwks: JwksEndpoint
) -> None:
    app_settings = settings.model_copy(
        update={"jwks_url": jwks.url, "jwks_refetch_interval_seconds": 0.0}  # type: ignore[attr-defined]
    )
    app = create_service_app(
        app_settings, title="t", description="t", routers=[sample_router()], produces=None
    )
    new_key = SigningKey(
        "rsa-2", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    with ThreadedServer(app) as server:
        first = httpx.get(
            f"{server.url}/me", headers={"Authorization": f"Bearer {RSA_KEY.token()}"}, timeout=10
        )
        assert first.status_code == 200
        jwks.keys = [RSA_KEY, ED_KEY, new_key]
        try:
            rotated = httpx.get(
                f"{server.url}/me",
                headers={"Authorization": f"Bearer {new_key.token()}"},
                timeout=10,
            )
        finally:
            jwks.keys = [RSA_KEY, ED_KEY]
    assert rotated.status_code == 200


async def test_a_token_is_refused_with_503_when_revocation_cannot_be_checked(
    resources: Resources, settings: ServiceSettings, jwks: JwksEndpoint
) -> None:
    broken = settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0", "jwks_url": jwks.url}  # type: ignore[attr-defined]
    )
    app = create_service_app(
        broken, title="t", description="t", routers=[sample_router()], produces=None
    )
    with ThreadedServer(app) as server:
        response = httpx.get(
            f"{server.url}/me", headers={"Authorization": f"Bearer {RSA_KEY.token()}"}, timeout=10
        )
    assert_problem(response, 503)


async def test_a_chunked_body_over_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 65_536  # 2.5 MB in all, with no Content-Length up front

    response = await client.post(
        "/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


async def test_a_full_connection_pool_is_a_fast_503_not_a_queue(
    resources: Resources, settings: ServiceSettings, jwks: JwksEndpoint
) -> None:
    """Every connection busy past the pool's timeout: 503 database-busy with Retry-After,
    quickly, and no connection beyond the pool is ever opened."""
    app_settings = settings.model_copy(
        update={
            "jwks_url": jwks.url,  # type: ignore[attr-defined]
            "database_pool_size": 1,
            "database_pool_timeout_seconds": 0.3,
        }
    )
    app = create_service_app(
        app_settings,
        title="sample",
        description="pool",
        routers=[sample_router()],
        produces=Producer.CONTENT,
    )
    with ThreadedServer(app) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            holding = asyncio.create_task(http.get("/slow-db"))
            await asyncio.sleep(0.3)  # the one connection is taken
            started = time.monotonic()
            refused = await http.post("/things")
            waited = time.monotonic() - started
            body = assert_problem(refused, 503)
            assert body["type"].endswith("/database-busy")
            assert refused.headers["retry-after"] == "1"
            assert waited < 1.2  # the pool's 0.3 s, not the holder's 1.5 s
            assert (await holding).status_code == 200
            assert (await http.post("/things")).status_code == 201  # and it heals


def test_a_service_refuses_another_services_settings() -> None:
    # The old create_app copies fell back to default settings (read from the
    # environment) when handed the wrong class: a test or a CLI could run a
    # service against another's database without a word.
    from services.access.main import SERVICE as ACCESS
    from services.content.settings import ContentSettings

    with pytest.raises(TypeError, match="access needs AccessSettings, not ContentSettings"):
        ACCESS.create_app(ContentSettings())


async def test_a_service_reads_its_components_typed(resources: Resources) -> None:
    from starlette.applications import Starlette

    from services.content.components import Components, app_components
    from shared.resources import components_of

    app = Starlette()
    with pytest.raises(RuntimeError, match="not started"):
        app_components(app)
    app.state.components = object()  # another service's, or a stray value
    with pytest.raises(RuntimeError, match="no Components"):
        components_of(app, Components)


async def test_an_idempotency_key_is_bound_to_the_request_it_came_with(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Authorization": f"Bearer {RSA_KEY.token()}", "Idempotency-Key": "k-1"}
    first = await client.post("/once/1", headers=headers)
    assert first.status_code == 200, first.text
    # The claim commits with the endpoint's work: one session, the endpoint's own.
    assert first.json() == {"thing_id": 1, "same_session": True}
    again = await client.post("/once/1", headers=headers)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    # The path comes from the request: the same key on another resource is refused.
    other = await client.post("/once/2", headers=headers)
    assert_problem(other, 422, "idempotency-key-reused")


async def test_every_503_says_when_to_come_back(client: httpx.AsyncClient) -> None:
    # A 503 raised without a Retry-After of its own (the deny-list's, when Redis
    # is back but its copy not yet reloaded) had none: clients retried at once.
    response = await client.get("/unavailable")
    assert_problem(response, 503, "service-unavailable")
    assert response.headers["retry-after"] == "2"


def test_an_idle_connection_outlives_the_load_balancers() -> None:
    """With uvicorn's own 5 s keep-alive, the API closed idle connections before the
    load balancer (60 s) and httpx (5 s) stopped reusing them: a request sent as
    the server closed got a reset (a 502 behind the balancer; a ReadError, about
    one in 8,000, in the fault test). A connection idle 6 s must still serve."""
    import http.client
    import re
    from pathlib import Path

    from shared.service.runtime import KEEP_ALIVE_SECONDS

    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    with ThreadedServer(app) as server:
        port = int(server.url.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            sockets = []
            for idle in (0, 6):  # the second after idling past uvicorn's default 5 s
                time.sleep(idle)
                # A closed connection raises here (RemoteDisconnected), not reconnects.
                connection.request("GET", "/ping")
                answer = connection.getresponse()
                assert (answer.status, answer.read()) == (200, b'{"ok":"yes"}')
                sockets.append(connection.sock)
            assert sockets[0] is sockets[1]  # the same connection served both
        finally:
            connection.close()
    main_tf = Path(__file__).parents[2] / "infra" / "platform" / "main.tf"
    balancer = re.search(r"idle_timeout\s*=\s*(\d+)", main_tf.read_text())
    assert balancer is not None
    assert int(balancer.group(1)) < KEEP_ALIVE_SECONDS  # the balancer closes first
