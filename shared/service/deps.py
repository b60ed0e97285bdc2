"""The dependency aliases every service's endpoints take, in one place: what a request
is given (the process's resources, a session, the caller, a once-only guard for
retried writes, paging), and the typed accessor of a service's own components.

Each is defined beside what it depends on (auth, resources, idempotency) and
gathered here, so an endpoint module imports its plumbing from one module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Query, Request
from starlette.applications import Starlette

from shared.http.auth import CallingService, CurrentPrincipal, OptionalPrincipal
from shared.http.pagination import MAX_PAGE_SIZE
from shared.resources import ResourcesDep, SessionDep, components_of
from shared.service.idempotency import IdempotencyKey, OnceDep

__all__ = [
    "CallingService",
    "CurrentPrincipal",
    "Cursor",
    "IdempotencyKey",
    "OnceDep",
    "OptionalPrincipal",
    "PageSize",
    "ResourcesDep",
    "SessionDep",
    "components_accessors",
]

PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=500)]

ComponentsT = TypeVar("ComponentsT")


def components_accessors(
    kind: type[ComponentsT],
) -> tuple[Callable[[Starlette], ComponentsT], Callable[[Request], Awaitable[ComponentsT]]]:
    """A service's components read from its app, and the same as a FastAPI dependency:
    `app_components, get_components = components_accessors(Components)`, then
    `ComponentsDep = Annotated[Components, Depends(get_components)]`."""

    def app_components(app: Starlette) -> ComponentsT:
        return components_of(app, kind)

    # async: FastAPI runs plain-def dependencies in a thread pool, at a real cost per request.
    async def get_components(request: Request) -> ComponentsT:
        return components_of(request.app, kind)

    return app_components, get_components
