"""The OpenAPI document every service publishes: the bearer scheme on the
routes that need a token, and problem+json on every error answer."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from shared.contracts.errors import PROBLEM_CONTENT_TYPE
from shared.http.auth import bearer_auth_of

PROBLEM_CONTENT: dict[str, Any] = {
    PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}
}
MALFORMED_BODY_RESPONSE = {
    "description": "The body is not JSON (or nests too deep to parse)",
    "content": PROBLEM_CONTENT,
}
# Marks a documented error answered in a standard's own JSON, not problem+json.
NOT_A_PROBLEM = "x-not-a-problem"
WRONG_MEDIA_TYPE_RESPONSE = {
    "description": "The body is not of the media type the operation takes (JSON, or a form)",
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
                    # Public, said so: no requirement is not the same as unknown
                    # (redocly's security-defined rule, #38).
                    operation.setdefault("security", [])
                    # A body that is not JSON at all (or nests too deep to parse) is a
                    # 400 before validation: say so wherever a body is taken.
                    if "requestBody" in operation:
                        operation["responses"].setdefault("400", MALFORMED_BODY_RESPONSE)
                        operation["responses"].setdefault("415", WRONG_MEDIA_TYPE_RESPONSE)
                    # Every error is problem+json, FastAPI's own 422 included, but
                    # where a standard says otherwise and the route marks it so
                    # (OAuth 2.0's token errors, RFC 6749 5.2: NOT_A_PROBLEM).
                    for status, response in operation["responses"].items():
                        content = response.get("content", {})
                        if response.pop(NOT_A_PROBLEM, False):
                            continue
                        if status[:1] in "45" and content and PROBLEM_CONTENT_TYPE not in content:
                            response["content"] = dict(PROBLEM_CONTENT)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
