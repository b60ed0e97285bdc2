"""One origin for the whole platform (#22), as the load balancer gives it in AWS.

A frontend calls one address. In AWS the ALB forwards each path to its service by
the rules of `stories.deployment.PUBLIC_ROUTES`; here the same table drives:

- `Gateway`, the reverse proxy `stories up` serves on port 8000;
- `nginx_conf()`, the configuration of compose's gateway container, checked in as
  infra/gateway/nginx.conf (tests/platform/test_gateway.py keeps it current);
- `platform_openapi()`, one OpenAPI document with every public route of every
  service, checked in as infra/gateway/openapi.json: the gateway serves it at
  /openapi.json and the TypeScript client (clients/typescript) is generated from it.

Internal paths (/v1/decisions, /metrics, /readyz) and paths no rule takes get the
ALB's own 404. CORS is answered here, once, for the gateway's origin: preflights
never reach a service, and a service's own CORS headers are replaced by the
gateway's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import fastapi_offline
import httpx
import structlog
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from shared.contracts.errors import NotFound, ServiceUnavailable
from shared.http.asgi import send_problem
from shared.http.middleware import (
    CORS_REFUSED,
    REQUEST_ID_HEADER,
    CorsPolicy,
    head_as_get,
    request_id_of,
)
from stories.deployment import INTERNAL_PATHS, PUBLIC_ROUTES, alb_pattern, forwarded_to

log = structlog.get_logger(__name__)

# Served by the gateway itself: the merged document and its Swagger UI and ReDoc.
DOCS_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
DOCS_ASSETS = "/docs-assets"
TITLE = "1001 Stories platform"

# Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection, not the message.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# What a client may not tell the service about itself: the gateway says it.
_SET_BY_GATEWAY = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-port", REQUEST_ID_HEADER}
)


def _has_dot_segment(path: str) -> bool:
    """`/v1/users/../decisions` would be matched as an access path but normalised
    on the way out into an internal one: such a path is never forwarded."""
    return any(segment in (".", "..") for segment in path.split("/"))


class Gateway:
    """A pure ASGI reverse proxy over the services' own addresses (`upstreams`).

    Every forwarded request has a deadline and a bound: at most `max_connections`
    at once to the services, a connection within `connect_seconds` and the first
    byte of the answer within `read_seconds`. A service that is down, full or slow
    is a fast 503 with Retry-After, never a hang.
    """

    def __init__(
        self,
        upstreams: Mapping[str, str],
        *,
        openapi: dict[str, Any],
        cors_origins: Sequence[str],
        max_connections: int = 256,
        connect_seconds: float = 2.0,
        read_seconds: float = 60.0,
    ) -> None:
        self._upstreams = {name: url.rstrip("/") for name, url in upstreams.items()}
        self._http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=64),
            timeout=httpx.Timeout(read_seconds, connect=connect_seconds, pool=1.0),
            follow_redirects=False,
        )
        self._cors = CorsPolicy(cors_origins)
        self._origins = frozenset(o.encode() for o in cors_origins)
        self._any_origin = "*" in cors_origins
        self._docs = _docs_app(openapi)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._docs(scope, receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets on this platform
        path: str = scope["path"]
        # One id for the request, the services' answers and the gateway's own (#38:
        # its 404s carried none): forwarded, so a service logs the same.
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        own = [(REQUEST_ID_HEADER, request_id.encode())]
        origin = _header(scope, b"origin")
        cors = self._cors_headers(origin)
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
            if cors:
                await self._answer_preflight(send, [*cors, *own])
            else:  # an origin not allowed: refused as such, not the route's 405
                await send_problem(scope, send, CORS_REFUSED, headers=own)
            return
        if path in DOCS_PATHS or path.startswith(DOCS_ASSETS + "/"):
            if scope["method"] == "HEAD":
                scope, send = head_as_get(scope, send)
            await self._docs(scope, receive, _with_headers(send, [*cors, *own]))
            return
        service = None if _has_dot_segment(path) else forwarded_to(path)
        if service is None:
            # What the ALB answers for an internal path or one no rule takes.
            await send_problem(scope, send, NotFound("No such route."), headers=[*cors, *own])
            return
        await self._forward(service, scope, receive, _with_headers(send, cors), request_id)

    def _cors_headers(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        if origin is None or not (self._any_origin or origin in self._origins):
            return []
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", ", ".join(self._cors.expose_headers).encode()),
            (b"vary", b"Origin"),
        ]

    async def _answer_preflight(self, send: Send, cors: list[tuple[bytes, bytes]]) -> None:
        headers = [
            *cors,
            (b"access-control-allow-methods", ", ".join(self._cors.allow_methods).encode()),
            (b"access-control-allow-headers", ", ".join(self._cors.allow_headers).encode()),
            (b"access-control-max-age", str(self._cors.max_age_seconds).encode()),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _forward(
        self, service: str, scope: Scope, receive: Receive, send: Send, request_id: str
    ) -> None:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        url = self._upstreams[service] + raw_path.decode("latin-1")
        if query:
            url += "?" + query.decode("latin-1")
        headers = [
            (name, value)
            for name, value in scope["headers"]
            if name not in _HOP_BY_HOP and name not in _SET_BY_GATEWAY
        ]
        headers.append((REQUEST_ID_HEADER, request_id.encode()))
        client = scope.get("client")
        server = scope.get("server")
        # The client's own address, as the ALB gives it: the services trust it from
        # the gateway alone (TRUSTED_PROXIES), so per-address limits still hold.
        if client:
            headers.append((b"x-forwarded-for", str(client[0]).encode()))
        headers.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()))
        if server and server[1] is not None:
            headers.append((b"x-forwarded-port", str(server[1]).encode()))
        has_body = any(name in (b"content-length", b"transfer-encoding") for name, _ in headers)
        has_body = has_body or _header(scope, b"transfer-encoding") is not None
        request = self._http.build_request(
            scope["method"],
            url,
            headers=headers,
            content=_body(receive) if has_body else None,
        )
        own = [(REQUEST_ID_HEADER, request_id.encode())]
        try:
            response = await self._http.send(request, stream=True)
        except httpx.PoolTimeout:
            await send_problem(
                scope,
                send,
                ServiceUnavailable("The gateway is at its limit of open requests."),
                headers=own,
            )
            return
        except httpx.HTTPError as exc:
            # Connect, timeout or anything else on the way: the same fast 503.
            log.warning("gateway: service did not answer", service=service, error=repr(exc))
            await send_problem(
                scope,
                send,
                ServiceUnavailable(f"The {service} service is not answering."),
                headers=own,
            )
            return
        try:
            out = [
                (name, value)
                for name, value in response.headers.raw
                if name.lower() not in _HOP_BY_HOP
                and name.lower() != b"date"  # the gateway's own server sends one
                # CORS is the gateway's to answer (below), not each service's.
                and not name.lower().startswith(b"access-control-")
            ]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": out}
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _with_headers(send: Send, added: list[tuple[bytes, bytes]]) -> Send:
    if not added:
        return send

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (k, v)
                for k, v in message.get("headers", [])
                if not k.lower().startswith(b"access-control-") and k.lower() != b"vary"
            ]
            message = {**message, "headers": [*headers, *added]}
        await send(message)

    return sending


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _docs_app(openapi: dict[str, Any]) -> FastAPI:
    """Swagger UI and ReDoc for the merged document, served (assets too) offline."""
    app: FastAPI = fastapi_offline.FastAPIOffline(
        title=TITLE,
        openapi_url="/openapi.json",
        static_url=DOCS_ASSETS,
    )
    app.openapi = lambda: openapi  # type: ignore[method-assign]
    return app


# --- the merged OpenAPI document ---------------------------------------------


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _rewrite_refs(node: Any, renamed: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                _renamed_ref(value, renamed)
                if key == "$ref" and isinstance(value, str)
                else _rewrite_refs(value, renamed)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item, renamed) for item in node]
    return node


SCHEMA_REF = "#/components/schemas/"


def _renamed_ref(ref: str, renamed: Mapping[str, str]) -> str:
    if ref.startswith(SCHEMA_REF):
        name = ref[len(SCHEMA_REF) :]
        return SCHEMA_REF + renamed.get(name, name)
    return ref


def merged_openapi(documents: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """One document for the gateway's origin, from each service's own.

    Only the paths the gateway forwards to that service are kept (what a frontend
    can call). A schema with the same name and the same definition in several
    services is kept once; with the same name but a different definition, each
    service's is renamed `<Service><Name>` and its references follow. Operation ids
    are each service's (FastAPI's are unique within one); a clash across services
    is resolved the same way, by the service's name in front.
    """
    definitions: dict[str, dict[str, Any]] = {}  # schema name -> {service: definition}
    for service, document in documents.items():
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            definitions.setdefault(name, {})[service] = schema
    clashing = {
        name
        for name, per_service in definitions.items()
        if len({json.dumps(s, sort_keys=True) for s in per_service.values()}) > 1
    }
    operation_ids: dict[str, int] = {}
    for service, document in documents.items():
        for path, operations in document.get("paths", {}).items():
            if forwarded_to(_example_path(path)) == service:
                for operation in operations.values():
                    if isinstance(operation, dict) and "operationId" in operation:
                        key = operation["operationId"]
                        operation_ids[key] = operation_ids.get(key, 0) + 1

    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    security: dict[str, Any] = {}
    for service in sorted(documents):
        document = documents[service]
        renamed = {name: f"{service.title()}{name}" for name in clashing}
        for path, operations in sorted(document.get("paths", {}).items()):
            if forwarded_to(_example_path(path)) != service:
                continue  # internal, or served only straight to the task
            kept = _rewrite_refs(copy.deepcopy(operations), renamed)
            for operation in kept.values():
                if not isinstance(operation, dict):
                    continue
                operation.setdefault("tags", []).insert(0, service)
                key = operation.get("operationId")
                if key is not None and operation_ids.get(key, 0) > 1:
                    operation["operationId"] = f"{service}_{key}"
            paths[path] = kept
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            schemas[renamed.get(name, name)] = _rewrite_refs(copy.deepcopy(schema), renamed)
        security.update(document.get("components", {}).get("securitySchemes", {}))
    # Only the schemas the kept paths reach (internal routes' own models go).
    reachable = _reachable({"paths": paths}, schemas)
    return {
        "openapi": next(iter(documents.values()))["openapi"],
        "info": {
            "title": TITLE,
            "version": next(iter(documents.values()))["info"]["version"],
            "license": {"name": "Proprietary: the 1001 Stories platform's own"},
            "description": (
                "Every public route of the four services, on one origin (the gateway "
                "locally, the load balancer in AWS). Each operation is tagged with the "
                "service that answers it. docs/frontend.md walks through the flows."
            ),
        },
        # The one origin the document describes: wherever it is served from.
        "servers": [{"url": "/", "description": "the gateway (the load balancer in AWS)"}],
        "tags": _declared_tags(paths),
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {name: schemas[name] for name in sorted(reachable)},
            "securitySchemes": security,
        },
    }


# What each tag groups, for the document's readers (redocly and spectral ask every
# tag an operation uses to be declared, #38).
TAG_DESCRIPTIONS = {
    "access": "Answered by the access service: accounts, sign-in, roles, classes",
    "content": "Answered by the content service: stories, books, the catalog, OPDS",
    "delivery": "Answered by the delivery service: links to books, reading",
    "metrics": "Answered by the metrics service: educational and workflow figures",
    "auth": "Signing in and out, tokens and keys",
    "users": "Accounts, roles and the audit log",
    "entitlements": "Who may read which book",
    "classes": "Classes, their learners, codes, assignments and reports",
    "submissions": "Stories written, reviewed and approved",
    "books": "Books, the catalog, story families and covers",
    "opds": "OPDS 2.0 feeds for reading apps",
    "deliveries": "Signed links to a book's PDF",
    "reading": "Reading progress, offline reading and reading apps' progression",
}


def _declared_tags(paths: Mapping[str, Any]) -> list[dict[str, str]]:
    used = sorted(
        {
            tag
            for operations in paths.values()
            for operation in operations.values()
            if isinstance(operation, dict)
            for tag in operation.get("tags", [])
        }
    )
    return [
        {"name": tag, "description": TAG_DESCRIPTIONS.get(tag, f"Operations tagged {tag}")}
        for tag in used
    ]


def _example_path(template: str) -> str:
    """A path template with a value in each parameter, as a request would have it."""
    out, depth = [], 0
    for char in template:
        if char == "{":
            depth += 1
            out.append("x")
        elif char == "}":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def _reachable(root: Any, schemas: Mapping[str, Any]) -> set[str]:
    seen: set[str] = set()
    pending = [r for r in _refs(root) if r.startswith(SCHEMA_REF)]
    while pending:
        name = pending.pop()[len(SCHEMA_REF) :]
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        pending += [r for r in _refs(schemas[name]) if r.startswith(SCHEMA_REF)]
    return seen


def platform_openapi() -> dict[str, Any]:
    """The merged document of the services as this checkout defines them."""
    from stories.registry import SERVICES

    return merged_openapi({name: SERVICES[name].create_app().openapi() for name in SERVICES})


def openapi_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=False) + "\n"


# --- compose's gateway container ----------------------------------------------


COMPOSE_UPSTREAMS = {name: f"{name}:8000" for name in sorted(PUBLIC_ROUTES)}
COMPOSE_ORIGINS = ("http://localhost:3000", "http://localhost:5173", "http://localhost:8004")


def nginx_conf(
    *,
    listen: str = "8000",
    upstreams: Mapping[str, str] = COMPOSE_UPSTREAMS,
    origins: Sequence[str] = COMPOSE_ORIGINS,
    openapi_root: str = "/etc/nginx/stories",
) -> str:
    """nginx's configuration for compose's gateway, from the same table: internal
    paths refused first, then each service's patterns in the rules' priority order
    (regex locations are tried in the order they are written). The test runs a
    real nginx on this, with `upstreams` pointed at a running platform."""
    policy = CorsPolicy(origins)
    lines = [
        "# Generated by `stories gateway-nginx` from stories/deployment.py PUBLIC_ROUTES;",
        "# tests/platform/test_gateway.py fails when it is stale. Do not edit by hand.",
        "worker_processes 2;",
        "events { worker_connections 4096; }",
        "http {",
        "  access_log off;",
        "  server_tokens off;",
        "  client_max_body_size 64m;",
        "  proxy_http_version 1.1;",
        "  proxy_connect_timeout 2s;",
        "  proxy_read_timeout 60s;",
        "  proxy_buffering off;",
        "  proxy_request_buffering off;",
        "  proxy_set_header Host $http_host;",
        "  proxy_set_header X-Forwarded-For $remote_addr;",
        "  proxy_set_header X-Forwarded-Proto $scheme;",
        "  # One id per request, the services' and nginx's own answers alike.",
        "  proxy_set_header X-Request-ID $request_id;",
        '  proxy_set_header Connection "";',
        "  # CORS is answered once, here: the services' own headers are dropped.",
        *(
            f"  proxy_hide_header {h};"
            for h in (
                "Access-Control-Allow-Origin",
                "Access-Control-Allow-Credentials",
                "Access-Control-Expose-Headers",
                "Access-Control-Allow-Methods",
                "Access-Control-Allow-Headers",
                "Access-Control-Max-Age",
            )
        ),
        "  map $http_origin $cors_origin {",
        '    default "";',
        *(f'    "{origin}" $http_origin;' for origin in origins),
        "  }",
    ]
    for name in sorted(upstreams):
        lines.append(f"  upstream {name} {{ server {upstreams[name]}; keepalive 32; }}")
    cors = [
        "      add_header Access-Control-Allow-Origin $cors_origin always;",
        "      add_header Access-Control-Allow-Credentials true always;",
        f'      add_header Access-Control-Expose-Headers "{", ".join(policy.expose_headers)}"'
        " always;",
        "      add_header Vary Origin always;",
    ]
    preflight = [
        '      if ($preflight ~ "^OPTIONS:.+:.+$") {',
        "        add_header Access-Control-Allow-Origin $cors_origin always;",
        "        add_header Access-Control-Allow-Credentials true always;",
        f'        add_header Access-Control-Allow-Methods "{", ".join(policy.allow_methods)}"'
        " always;",
        f'        add_header Access-Control-Allow-Headers "{", ".join(policy.allow_headers)}"'
        " always;",
        f"        add_header Access-Control-Max-Age {policy.max_age_seconds} always;",
        "        return 204;",
        "      }",
    ]
    not_found = [
        "      default_type application/problem+json;",
        "      add_header X-Request-ID $request_id always;",
        '      return 404 \'{"type":"https://stories.example/problems/not-found",'
        '"title":"Not found","status":404,"request_id":"$request_id"}\';',
    ]
    lines += [
        "  server {",
        f"    listen {listen};",
        '    set $preflight "$request_method:$cors_origin:$http_access_control_request_method";',
        "    location = /openapi.json {",
        f"      root {openapi_root};",
        "      default_type application/json;",
        *cors,
        "    }",
    ]
    for pattern in INTERNAL_PATHS:
        lines += [f'    location ~ "^{alb_pattern(pattern)}$" {{', *not_found, "    }"]
    lines += [
        "    # A dot segment is never forwarded (it could be normalised into an internal path).",
        '    location ~ "(^|/)\\.\\.?(/|$)" {',
        *not_found,
        "    }",
    ]
    for name, rule in sorted(PUBLIC_ROUTES.items(), key=lambda item: int(item[1]["priority"])):
        regex = "|".join(alb_pattern(p) for p in rule["paths"])
        lines += [
            f'    location ~ "^({regex})$" {{',
            *preflight,
            *cors,
            f"      proxy_pass http://{name};",
            "    }",
        ]
    lines += ["    location / {", *not_found, "    }", "  }", "}"]
    return "\n".join(lines) + "\n"
