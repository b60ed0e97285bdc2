"""The OpenAPI document every service publishes: the bearer scheme on the
routes that need a token, and problem+json on every error answer."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from shared.auth import bearer_auth_of
from shared.errors import PROBLEM_CONTENT_TYPE

PROBLEM_CONTENT: dict[str, Any] = {
    PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}
}
MALFORMED_BODY_RESPONSE = {
    "description": "The body is not JSON (or nests too deep to parse)",
    "content": PROBLEM_CONTENT,
}


def document_bearer_auth(app: FastAPI) -> None:
    """Mark every route that needs a token with the bearer scheme in the OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from POST /v1/auth/login",
                }
            }
            # Included routers are kept as contexts; walk them to the real routes.
            for context in iter_route_contexts(app.routes):
                route = context.original_route
                needs = bearer_auth_of(route.dependant) if isinstance(route, APIRoute) else None
                if needs is None:
                    continue
                # A public route that does more for a token takes either.
                security: list[dict[str, list[str]]] = [{"bearer": []}]
                if needs == "optional":
                    security.insert(0, {})
                operations = schema["paths"].get(context.path_format, {})
                for method in context.methods or ():
                    if method.lower() in operations:
                        operations[method.lower()]["security"] = security
            for operations in schema["paths"].values():
                for operation in operations.values():
                    # A body that is not JSON at all (or nests too deep to parse) is a
                    # 400 before validation: say so wherever a body is taken.
                    if "requestBody" in operation:
                        operation["responses"].setdefault("400", MALFORMED_BODY_RESPONSE)
                    # Every error is problem+json, FastAPI's own 422 included.
                    for status, response in operation["responses"].items():
                        content = response.get("content", {})
                        if status[:1] in "45" and content and PROBLEM_CONTENT_TYPE not in content:
                            response["content"] = dict(PROBLEM_CONTENT)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
