"""One OpenAPI document with every public route of every service, checked in as
infra/gateway/openapi.json: the gateway serves it at /openapi.json and the
TypeScript client (clients/typescript) is generated from it."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from stories.deployment import forwarded_to

TITLE = "1001 Stories platform"


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
