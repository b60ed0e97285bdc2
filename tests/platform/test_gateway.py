"""#22: one origin for the whole platform, built from the load balancer's own table.

The checked-in files (the merged OpenAPI document, compose's nginx configuration)
are kept current; the merge is exact; the gateway of `stories up` and a real nginx
on the generated configuration both forward every route of the merged document to
the service that serves it, refuse the internal ones, answer CORS once and shed
a dead or slow service as a fast 503.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from stories.deployment import INTERNAL_PATHS, PUBLIC_ROUTES, forwarded_to
from stories.emulator import free_port
from stories.gateway.nginx import nginx_conf
from stories.gateway.openapi import _example_path, merged_openapi, openapi_json, platform_openapi
from stories.gateway.proxy import Gateway
from tests.harness.embedded import SERVICE_OFFSETS, running_platform, starts_timeout
from tests.support import ThreadedServer, wait_until

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_FILES = ROOT / "infra" / "gateway"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ORIGIN = "http://localhost:5173"


def test_the_checked_in_openapi_document_is_the_services_merged() -> None:
    """The TypeScript client is generated from this file: a change to any public
    route's shape that is not written here fails, so it cannot reach the client
    unnoticed. `stories openapi > infra/gateway/openapi.json` writes it."""
    expected = openapi_json(platform_openapi())
    assert (GATEWAY_FILES / "openapi.json").read_text() == expected, (
        "stale: run `stories openapi > infra/gateway/openapi.json`"
    )


def test_the_checked_in_nginx_configuration_is_generated_from_the_route_table() -> None:
    assert (GATEWAY_FILES / "nginx.conf").read_text() == nginx_conf(), (
        "stale: run `stories gateway-nginx > infra/gateway/nginx.conf`"
    )


def test_compose_runs_the_generated_gateway_on_port_8000() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    gateway = compose["services"]["gateway"]
    assert gateway["image"].startswith("nginx:1."), "a pinned nginx"
    assert "8000:8000" in gateway["ports"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in gateway["volumes"]}
    assert mounts["./infra/gateway/nginx.conf"] == "/etc/nginx/nginx.conf"
    assert mounts["./infra/gateway/openapi.json"] == "/etc/nginx/stories/openapi.json"
    assert set(gateway["depends_on"]) == set(PUBLIC_ROUTES)


def test_the_merged_document_has_every_public_route_once_and_no_internal_one() -> None:
    document = json.loads((GATEWAY_FILES / "openapi.json").read_text())
    ids = [
        operation["operationId"]
        for operations in document["paths"].values()
        for operation in operations.values()
    ]
    assert len(ids) == len(set(ids)), "operation ids are unique"
    assert not [p for p in document["paths"] if p.startswith(("/v1/decisions", "/readyz"))]
    for path, operations in document["paths"].items():
        owner = forwarded_to(_example_path(path))
        assert owner is not None, path
        for operation in operations.values():
            assert operation["tags"][0] == owner, path
    # Every reference resolves, and ProblemDetail (in every service) is there once.
    text = json.dumps(document)
    schemas = document["components"]["schemas"]
    for ref in set(_refs(document)):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert "ProblemDetail" in schemas
    assert "AccessProblemDetail" not in text
    assert {"/v1/auth/login", "/v1/books", "/v1/deliveries", "/v1/metrics/overview"} <= set(
        document["paths"]
    )


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _document(path: str, schema: dict[str, Any], operation_id: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            path: {
                "get": {
                    "operationId": operation_id,
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Page"}
                                }
                            },
                        }
                    },
                }
            }
        },
        "components": {"schemas": {"Page": schema, "Unused": {"type": "string"}}},
    }


def test_a_schema_two_services_define_differently_is_kept_apart_and_one_alike_once() -> None:
    books = {"type": "object", "properties": {"items": {"type": "array"}}}
    users = {"type": "object", "properties": {"cursor": {"type": "string"}}}
    merged = merged_openapi(
        {
            "content": _document("/v1/books", books, "list_get"),
            "access": _document("/v1/users", users, "list_get"),
        }
    )
    schemas = merged["components"]["schemas"]
    assert schemas == {"ContentPage": books, "AccessPage": users}, "unused ones go too"
    books_ref = merged["paths"]["/v1/books"]["get"]["responses"]["200"]["content"]
    assert books_ref["application/json"]["schema"]["$ref"] == "#/components/schemas/ContentPage"
    assert merged["paths"]["/v1/books"]["get"]["operationId"] == "content_list_get"
    assert merged["paths"]["/v1/users"]["get"]["operationId"] == "access_list_get"
    alike = merged_openapi(
        {
            "content": _document("/v1/books", books, "books_get"),
            "access": _document("/v1/users", books, "users_get"),
        }
    )
    assert set(alike["components"]["schemas"]) == {"Page"}
    assert alike["paths"]["/v1/books"]["get"]["operationId"] == "books_get"


def test_the_route_table_decides_as_the_load_balancer_does() -> None:
    assert forwarded_to("/v1/books/abc") == "content"
    assert forwarded_to("/v1/users/me") == "access"
    assert forwarded_to("/v1/decisions") is None
    assert forwarded_to("/v1/decisions/batch") is None
    assert forwarded_to("/metrics") is None
    assert forwarded_to("/v1/book") is None, "no rule takes it"
    assert forwarded_to("/V1/BOOKS") is None, "ALB patterns are case-sensitive"
    assert all(forwarded_to(p.replace("*", "x")) is None for p in INTERNAL_PATHS)


# --- the gateway's own answers, without a platform ------------------------------------


def _slow_app(seconds: float) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/books")
    async def books() -> dict[str, str]:
        await asyncio.sleep(seconds)
        return {"late": "yes"}

    return app


@pytest.fixture
async def lonely_gateway() -> AsyncIterator[tuple[Gateway, ThreadedServer]]:
    """A gateway whose content answers after 5 s and whose other services are down."""
    slow = ThreadedServer(_slow_app(5)).__enter__()
    dead = f"http://127.0.0.1:{free_port()}"
    gateway = Gateway(
        {"content": slow.url, "access": dead, "delivery": dead, "metrics": dead},
        openapi={"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {}},
        cors_origins=[ORIGIN],
        read_seconds=0.5,
    )
    try:
        yield gateway, slow
    finally:
        await gateway.aclose()
        slow.__exit__()


async def test_a_dead_or_slow_service_is_a_fast_503_with_retry_after(
    lonely_gateway: tuple[Gateway, ThreadedServer],
) -> None:
    gateway, _ = lonely_gateway
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway), base_url="http://gw"
    ) as http:
        for path in ("/v1/users/me", "/v1/books"):
            started = time.monotonic()
            answer = await http.get(path, headers={"Origin": ORIGIN})
            assert time.monotonic() - started < 2, path
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert int(answer.headers["retry-after"]) > 0
            # Even a failure is readable by the frontend's origin.
            assert answer.headers["access-control-allow-origin"] == ORIGIN


async def test_internal_and_unknown_paths_are_the_load_balancers_404(
    lonely_gateway: tuple[Gateway, ThreadedServer],
) -> None:
    gateway, _ = lonely_gateway
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway), base_url="http://gw"
    ) as http:
        # #37 F13: the service token, public through /v1/auth/* before.
        for path in (
            "/v1/decisions",
            "/v1/decisions/batch",
            "/v1/auth/service-token",
            "/readyz",
            "/metrics",
            "/nope",
        ):
            answer = await http.post(path, json={})
            assert answer.status_code == 404, path
            assert answer.headers["content-type"] == "application/problem+json"


# --- the real thing: stories up, and nginx on the generated configuration ------------


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    workdir = tmp_path_factory.mktemp("gateway")
    with running_platform(workdir) as base:
        yield base


@pytest.fixture(scope="module")
def nginx(platform: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real nginx running the configuration compose uses, pointed at `stories up`."""
    if not Path(NGINX).exists():
        pytest.skip("SKIPPED: nginx is not installed (scripts/ensure-tools installs nginx-light)")
    prefix = tmp_path_factory.mktemp("nginx")
    port = free_port()
    upstreams = {name: f"127.0.0.1:{platform + offset}" for name, offset in SERVICE_OFFSETS.items()}
    (prefix / "openapi.json").write_text((GATEWAY_FILES / "openapi.json").read_text())
    conf = prefix / "nginx.conf"
    conf.write_text(
        nginx_conf(
            listen=f"127.0.0.1:{port}",
            upstreams=upstreams,
            origins=[ORIGIN],
            openapi_root=str(prefix),
        )
    )
    main = f"daemon off; pid {prefix}/nginx.pid; error_log {prefix}/error.log;"
    if os.geteuid() == 0:
        main += " user root;"  # the workers write temporary files under the prefix
    process = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-g", main])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{url}/openapi.json"), timeout=20, what="nginx")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _operations(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, a path with an id in each parameter, the template) of every operation."""
    some_id = "00000000-0000-4000-8000-000000000000"
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", some_id, path), path)
        for path, operations in document["paths"].items()
        for method in operations
    ]


def _walk(gateway: str, platform: int) -> list[str]:
    """Every operation of the merged document through the gateway and straight to
    its service: the same status, and the answer came from the service (its
    request id), not from the gateway."""
    document = httpx.get(f"{gateway}/openapi.json", timeout=10).json()
    assert document == json.loads((GATEWAY_FILES / "openapi.json").read_text())
    wrong = []
    with httpx.Client(timeout=10) as http:
        for method, path, template in _operations(document):
            owner = forwarded_to(_example_path(template))
            assert owner is not None
            direct = f"http://127.0.0.1:{platform + SERVICE_OFFSETS[owner]}"
            through = http.request(method, f"{gateway}{path}")
            straight = http.request(method, f"{direct}{path}")
            # Every service answer carries nosniff (shared middleware); the gateway's
            # own do not (they carry a request id too since #38, so that is no sign).
            answered_by_service = "x-content-type-options" in through.headers
            if through.status_code != straight.status_code or not answered_by_service:
                wrong.append(f"{method} {template}: {through.status_code}/{straight.status_code}")
    return wrong


def _refusals(gateway: str, platform: int) -> None:
    access = f"http://127.0.0.1:{platform + SERVICE_OFFSETS['access']}"
    with httpx.Client(timeout=10) as http:
        # Access itself serves these (to other services)...
        assert http.post(f"{access}/v1/decisions", json={}).status_code != 404
        for path in (
            "/v1/decisions",
            "/v1/decisions/batch",
            "/readyz",
            "/metrics",
            "/v1/users/../decisions",
            "/v1/users/%2e%2e/decisions",
        ):
            answer = http.post(f"{gateway}{path}", json={})
            assert answer.status_code == 404, (path, answer.text)
            assert "x-content-type-options" not in answer.headers, path  # no service saw it
            # The gateway's own answer still names the request (#38: it did not).
            assert answer.headers["x-request-id"], path


def _cors(gateway: str) -> None:
    with httpx.Client(timeout=10) as http:
        preflight = http.options(
            f"{gateway}/v1/auth/login",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "x-content-type-options" not in preflight.headers, "answered at the gateway"
        answer = http.get(f"{gateway}/v1/books", headers={"Origin": ORIGIN})
        assert answer.status_code == 200
        assert answer.headers.get_list("access-control-allow-origin") == [ORIGIN], "once"
        assert len(answer.headers.get_list("date")) == 1
        assert "ETag" in answer.headers["access-control-expose-headers"]
        stranger = http.get(f"{gateway}/v1/books", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers


@pytest.mark.slow
@pytest.mark.timeout(starts_timeout(1))
def test_stories_up_serves_every_public_route_on_one_origin(platform: int) -> None:
    gateway = f"http://127.0.0.1:{platform - 1}"
    assert _walk(gateway, platform) == []
    _refusals(gateway, platform)
    _cors(gateway)
    docs = httpx.get(f"{gateway}/docs", timeout=10)
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text


@pytest.mark.slow
@pytest.mark.timeout(starts_timeout(1))
def test_compose_gateway_nginx_serves_the_same_routes(platform: int, nginx: str) -> None:
    assert _walk(nginx, platform) == []
    _refusals(nginx, platform)
    _cors(nginx)
