"""Entitlements: who may read which book, granted and revoked by managers."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.access.dependencies import (
    EntitlementServiceDep,
)
from services.access.schemas import (
    BulkEntitlementGrant,
    BulkGrantResult,
    EntitlementGrant,
    EntitlementOut,
)
from shared.http.pagination import Page
from shared.http.problems import problem_responses
from shared.service.deps import CurrentPrincipal, OnceDep, PageSize

entitlements = APIRouter(prefix="/v1/entitlements", tags=["entitlements"])


@entitlements.post(
    "",
    status_code=201,
    response_model=EntitlementOut,
    summary="Grant a user a book (TEACHER: learners and published books only)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def grant_entitlement(
    body: EntitlementGrant,
    principal: CurrentPrincipal,
    once: OnceDep,
    service: EntitlementServiceDep,
) -> JSONResponse:
    async def grant() -> EntitlementOut:
        return EntitlementOut.model_validate(await service.grant(principal, body))

    return await once.respond(body, grant, status_code=201)


@entitlements.post(
    "/bulk",
    status_code=201,
    response_model=BulkGrantResult,
    summary="Grant one book to many users at once (all or nothing)",
    responses=problem_responses(401, 403, 404, 422),
)
async def grant_entitlements_in_bulk(
    body: BulkEntitlementGrant,
    principal: CurrentPrincipal,
    once: OnceDep,
    service: EntitlementServiceDep,
) -> JSONResponse:
    async def grant() -> BulkGrantResult:
        granted, existing = await service.grant_bulk(principal, body)
        return BulkGrantResult(
            granted=[EntitlementOut.model_validate(e) for e in granted], already_entitled=existing
        )

    return await once.respond(body, grant, status_code=201)


@entitlements.delete(
    # Only an id matches, so /v1/entitlements/bulk is its own resource (a DELETE
    # there is a 405 naming POST, not a 422 about a malformed id).
    "/{entitlement_id:uuid}",
    summary="Revoke an entitlement",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def revoke_entitlement(
    entitlement_id: uuid.UUID, principal: CurrentPrincipal, service: EntitlementServiceDep
) -> EntitlementOut:
    return EntitlementOut.model_validate(await service.revoke(principal, entitlement_id))


@entitlements.get(
    "",
    summary="List entitlements (learners: their own; teachers: those they granted)",
    responses=problem_responses(401, 403, 422),
)
async def list_entitlements(
    principal: CurrentPrincipal,
    service: EntitlementServiceDep,
    user_id: uuid.UUID | None = None,
    book_id: uuid.UUID | None = None,
    include_revoked: bool = False,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: PageSize = 50,
) -> Page[EntitlementOut]:
    rows, next_cursor = await service.list_entitlements(
        principal,
        user_id=user_id,
        book_id=book_id,
        include_revoked=include_revoked,
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[EntitlementOut.model_validate(e) for e in rows], next_cursor=next_cursor)
