"""RFC 9457 problem details for every failure, validation included.

Raise a `Problem` (or a subclass) from anywhere below an endpoint; the
handlers here turn it, FastAPI's validation errors and Starlette's HTTP errors
into `application/problem+json`. Anything unexpected is answered by the
outermost middleware (`RequestContextMiddleware`, through the same
`problem_body`), so a 500 carries the request id and CORS headers too; it never
leaks its message: the client gets the request id to quote instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.contracts.errors import (
    PROBLEM_CONTENT_TYPE,
    CacheUnavailable,
    Conflict,
    DatabaseBusy,
    Forbidden,
    NotFound,
    PreconditionFailed,
    Problem,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    problem_body,
)

__all__ = [
    "Conflict",
    "Forbidden",
    "NotFound",
    "PreconditionFailed",
    "Problem",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "Unprocessable",
]


log = structlog.get_logger(__name__)


class ProblemDetail(BaseModel):
    """The body of every error response (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


_STATUS_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    428: "precondition-required",
    422: "unprocessable",
    429: "too-many-requests",
    503: "service-unavailable",
}


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = problem_body(
        request.scope, status=status, code=code, title=title, detail=detail, extensions=extensions
    )
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return JSONResponse(
        exc.body(request.scope),
        status_code=exc.status,
        headers=exc.headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


def allowed_methods(request: Request) -> str:
    """Every method some route answers on this path, for a 405's `Allow` header.

    Starlette names only the first route whose path matched, so a path served by
    two routes (GET /v1/books and POST /v1/books) would claim to allow just one.
    """
    literal: set[str] = set()
    templated: set[str] = set()
    path, root = request.scope["path"], request.scope.get("root_path", "")
    path = path.removeprefix(root) if root else path
    # Included routers are kept as contexts; walk them to the real routes.
    for route in iter_route_contexts(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if route.methods and regex is not None and regex.match(path):
            (templated if "{" in (route.path_format or "") else literal).update(route.methods)
    # A path spelled out (/v1/entitlements/bulk) is its own resource, even where a
    # template (/v1/entitlements/{id}) would also match it, as OpenAPI reads paths.
    methods = literal or templated
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = exc.detail if isinstance(exc.detail, str) else "HTTP error"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return problem_response(
        request,
        status=exc.status_code,
        code=_STATUS_CODES.get(exc.status_code, "http-error"),
        title=title,
        headers=headers or None,
    )


def _json_media_type(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = exc.errors()
    # What is wrong with the body as a whole is not a field's problem (#38): JSON
    # that does not parse is a 400, a body that is not JSON at all a 415.
    if any(error.get("type") == "json_invalid" for error in raw):
        return problem_response(
            request,
            status=400,
            code="malformed-json",
            title="The request body is not valid JSON",
            detail="; ".join(str(e.get("msg", "")) for e in raw if e.get("type") == "json_invalid"),
        )
    # A write that needs If-Match declares it required; leaving it out is still
    # the 428 the write answers (RFC 6585), not a field's 422.
    if any(
        e.get("type") == "missing"
        and [str(p).lower() for p in e.get("loc", ())] == ["header", "if-match"]
        for e in raw
    ):
        return problem_response(
            request,
            status=428,
            code="precondition-required",
            title="Precondition required",
            detail="Send the version you read as If-Match (the ETag of the GET).",
        )
    body_errors = [e for e in raw if tuple(e.get("loc", ()))[:1] == ("body",)]
    has_body = request.headers.get("content-length", "0") not in ("", "0") or (
        "transfer-encoding" in request.headers
    )
    if body_errors and has_body and not _json_media_type(request):
        return problem_response(
            request,
            status=415,
            code="unsupported-media-type",
            title="Unsupported media type",
            detail="This endpoint takes JSON: send Content-Type: application/json.",
        )
    errors = [
        {
            "location": [str(part) for part in error.get("loc", ())],
            "message": error.get("msg", "invalid"),
            "type": error.get("type", "invalid"),
        }
        for error in raw
    ]
    return problem_response(
        request,
        status=422,
        code="validation-error",
        title="The request is not valid",
        detail="; ".join(f"{'.'.join(e['location'])}: {e['message']}" for e in errors),
        errors=errors,
    )


async def _on_concurrent_write(request: Request, exc: Exception) -> JSONResponse:
    # Two requests wrote the same first-write-wins row at once (an account for one
    # email, an active grant of one book): checked, both saw nothing; the database's
    # constraint let one in and refused this one, whose transaction rolled back.
    log.info("concurrent write refused by a constraint", path=request.url.path)
    return problem_response(
        request,
        status=409,
        code="concurrent-write",
        title="Conflict",
        detail="Another request made the same change at the same moment; read the "
        "current state before trying again.",
    )


async def _on_redis_error(request: Request, exc: Exception) -> JSONResponse:
    # Reads have their degraded paths; what reaches here is a step that needs
    # Redis and has none. Nothing was half done: the request's transaction rolls back.
    log.warning("redis unavailable", path=request.url.path, error=str(exc))
    return await _on_problem(request, CacheUnavailable())


async def _on_database_busy(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database pool exhausted", path=request.url.path)
    return await _on_problem(request, DatabaseBusy())


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(IntegrityError, _on_concurrent_write)
    app.add_exception_handler(PoolTimeout, _on_database_busy)
    app.add_exception_handler(RedisError, _on_redis_error)


# For OpenAPI: `responses=problem_responses(401, 403)` documents the error bodies.
def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": ProblemDetail,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": ProblemDetail.model_json_schema()}},
            "description": _STATUS_CODES.get(status, "error").replace("-", " ").capitalize(),
        }
        for status in statuses
    }
