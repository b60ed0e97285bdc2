"""Domain errors that become RFC 9457 problems (see shared/http/problems.py).

Kept free of FastAPI so service modules can raise them without importing the
web framework.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

PROBLEM_BASE_URI = "https://stories.example/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_body(
    scope: Mapping[str, Any],
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> MutableMapping[str, Any]:
    """The RFC 9457 body of every error the platform answers, from a handler, a
    fast path or the outermost middleware alike: the same fields, the request id."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE_URI + code,
        "title": title,
        "status": status,
        "instance": scope.get("path", ""),
    }
    if detail:
        body["detail"] = detail
    request_id = scope.get("state", {}).get("request_id")
    if request_id:
        body["request_id"] = request_id
    body.update(extensions or {})
    return body


class Problem(Exception):  # noqa: N818 - named for the RFC, not "...Error"
    status: int = 400
    code: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        commit_changes: bool = False,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title or self.title)
        # True when the refusal itself must be remembered (a detected token
        # reuse revokes the family): the request's transaction commits anyway.
        self.commit_changes = commit_changes
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        self.headers = dict(headers or {})
        self.extensions = extensions

    def body(self, scope: Mapping[str, Any]) -> MutableMapping[str, Any]:
        return problem_body(
            scope,
            status=self.status,
            code=self.code,
            title=self.title,
            detail=self.detail,
            extensions=self.extensions,
        )


class Unauthorized(Problem):
    status, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="stories"'})
        super().__init__(detail, **kw)


class InvalidToken(Unauthorized):
    """A bearer token was sent and is not good: expired, revoked, forged, malformed.
    RFC 6750 3.1 says so in the challenge (`error="invalid_token"`), so a client
    knows to refresh or sign in again rather than to add a token it left out."""

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault(
            "headers", {"WWW-Authenticate": 'Bearer realm="stories", error="invalid_token"'}
        )
        super().__init__(detail, **kw)


class Forbidden(Problem):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(Problem):
    status, code, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, code, title = 409, "conflict", "Conflict"


class PreconditionFailed(Problem):
    status, code, title = 412, "precondition-failed", "Precondition failed"


class PreconditionRequired(Problem):
    status, code, title = 428, "precondition-required", "Precondition required"


class ContentTooLarge(Problem):
    status, code, title = 413, "payload-too-large", "Content too large"


class UnsupportedMediaType(Problem):
    status, code, title = 415, "unsupported-media-type", "Unsupported media type"


class Unprocessable(Problem):
    status, code, title = 422, "unprocessable", "Unprocessable content"


class TooManyRequests(Problem):
    status, code, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int, **kw: Any) -> None:
        kw.setdefault("headers", {"Retry-After": str(max(1, retry_after))})
        super().__init__(detail, retry_after=max(1, retry_after), **kw)


class ServiceUnavailable(Problem):
    """A dependency cannot answer right now. Every 503 says when to come back
    (`Retry-After`): the dependencies heal in seconds (a circuit half-opens, a
    mirror reloads), and a client that retries at once only adds load."""

    status, code, title = 503, "service-unavailable", "Service unavailable"
    RETRY_AFTER_SECONDS = 2

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        headers = dict(kw.pop("headers", None) or {})
        headers.setdefault("Retry-After", str(self.RETRY_AFTER_SECONDS))
        super().__init__(detail, headers=headers, **kw)


class CacheUnavailable(ServiceUnavailable):
    """Redis could not answer a write that has no safe substitute (a logout's denial
    must reach every process): refused quickly, so the client can try again."""

    code = "cache-unavailable"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        super().__init__(detail or "A shared store is unavailable right now; try again.", **kw)


class DatabaseBusy(ServiceUnavailable):
    """Every connection of this process's pool stayed busy past the pool's timeout:
    a bounded queue refusing more, not a fault; the client should come back."""

    code = "database-busy"
    RETRY_AFTER_SECONDS = 1

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        super().__init__(detail or "Too busy to reach the database right now; try again.", **kw)
