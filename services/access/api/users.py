"""Accounts: who I am and what I may read, the user list and audit log for
admins, roles, review languages and erasure."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.access.components import account_service, app_components
from services.access.data_export import download_link, parts_written
from services.access.dependencies import (
    DecisionServiceDep,
    ErasureDep,
    ExportServiceDep,
    UserAdministrationDep,
)
from services.access.models import DataExport
from services.access.schemas import (
    AuditEntryOut,
    ExportOut,
    ReadableBook,
    ReviewLanguages,
    RoleChange,
    UserOut,
)
from shared.clients.db import unit_of_work
from shared.contracts.roles import Role
from shared.http.pagination import Page
from shared.http.problems import problem_responses
from shared.service.deps import CurrentPrincipal, PageSize, ResourcesDep

users = APIRouter(prefix="/v1/users", tags=["users"])


@users.get(
    "/me",
    response_model=UserOut,
    summary="The caller's account",
    responses=problem_responses(401, 403),
)
async def me(principal: CurrentPrincipal, request: Request, resources: ResourcesDep) -> Response:
    # Hot path: served from the in-process profile cache (invalidated over
    # pub/sub on any change), so most calls touch neither the DB nor pydantic.
    components = app_components(request.app)
    if principal.kind == "user":
        cached = components.profiles.get(principal.user_id)
        if cached is not None:
            return Response(cached, media_type="application/json")

    async def read_profile() -> bytes:
        generation = components.profiles.generation
        async with unit_of_work(resources.session_factory) as session:
            user = await account_service(components, resources, session).current_user(principal)
            profile = UserOut.model_validate(user).model_dump_json().encode()
        components.profiles.put(user.id, profile, generation)
        return profile

    profile = await components.profiles.in_flight.run(principal.subject, read_profile)
    return Response(profile, media_type="application/json")


@users.get(
    "/me/books",
    summary="Published books the caller may read; those assigned to their classes first",
    description="Assigned books come first, the soonest due first, with their due dates.",
    responses=problem_responses(401),
)
async def my_books(
    principal: CurrentPrincipal, service: DecisionServiceDep, limit: PageSize = 100
) -> list[ReadableBook]:
    readable, assigned = await service.readable_books(principal, limit)
    return [
        ReadableBook(
            book_id=book.book_id,
            title=book.title,
            language=book.language,
            reading_level=book.reading_level,
            family_id=book.family_id,
            access=book.access,
            reason=reason,
            assigned=book.book_id in assigned,
            due_at=assigned.get(book.book_id),
        )
        for book, reason in readable
    ]


@users.get(
    "",
    summary="List accounts (ADMIN)",
    responses=problem_responses(401, 403, 422),
)
async def list_users(
    principal: CurrentPrincipal,
    service: UserAdministrationDep,
    role: Role | None = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: PageSize = 50,
) -> Page[UserOut]:
    rows, next_cursor = await service.list_users(principal, role=role, cursor=cursor, limit=limit)
    return Page(items=[UserOut.model_validate(u) for u in rows], next_cursor=next_cursor)


@users.get(
    "/audit-log",
    summary="Role and entitlement changes, newest first (ADMIN)",
    responses=problem_responses(401, 403, 422),
)
async def audit_log(
    principal: CurrentPrincipal,
    service: UserAdministrationDep,
    subject_id: uuid.UUID | None = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: PageSize = 50,
) -> Page[AuditEntryOut]:
    rows, next_cursor = await service.audit_log(
        principal, subject_id=subject_id, cursor=cursor, limit=limit
    )
    return Page(items=[AuditEntryOut.model_validate(e) for e in rows], next_cursor=next_cursor)


@users.put(
    "/me/review-languages",
    summary="Declare the languages you review (STORY_MANAGER and up)",
    description="Your review queue then shows, by default, submissions in these "
    "languages only, and you review only these; an empty list means every language. "
    "Where an ADMIN set your languages, you may choose among them, not add to them "
    "(403 `review-languages-restricted`, with the `allowed` list).",
    responses=problem_responses(401, 403, 422),
)
async def set_my_review_languages(
    body: ReviewLanguages, principal: CurrentPrincipal, service: UserAdministrationDep
) -> UserOut:
    return UserOut.model_validate(
        await service.set_review_languages(principal, None, body.languages)
    )


@users.put(
    "/{user_id}/review-languages",
    summary="Set the languages a story manager reviews (ADMIN); a ceiling they keep",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def set_review_languages(
    user_id: uuid.UUID,
    body: ReviewLanguages,
    principal: CurrentPrincipal,
    service: UserAdministrationDep,
) -> UserOut:
    return UserOut.model_validate(
        await service.set_review_languages(principal, user_id, body.languages)
    )


@users.put(
    "/{user_id}/role",
    summary="Change an account's role (ADMIN; the last ADMIN cannot be demoted)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def assign_role(
    user_id: uuid.UUID,
    body: RoleChange,
    principal: CurrentPrincipal,
    service: UserAdministrationDep,
) -> UserOut:
    return UserOut.model_validate(await service.assign_role(principal, user_id, body.role))


EXPORT_DESCRIPTION = (
    "A copy of what every service holds about the account (#41): access (the account, "
    "classes, entitlements, consent, sessions, the audit entries about it), content (what "
    "it wrote and reviewed, books crediting it), delivery (reading progress, offline "
    "reading), metrics (the rows that count it). Each service gathers its part from its "
    "own database; within minutes `GET` gives a signed link to one zip (JSON, and CSV for "
    "each table), kept `ACCESS_EXPORT_DAYS` (7). One at a time: asked again while one is "
    "gathering, 409 `export-in-progress`. In the audit log."
)


async def _export_out(export: DataExport, request: Request, resources: ResourcesDep) -> ExportOut:
    settings = app_components(request.app).settings
    out = ExportOut.model_validate(export)
    if export.status == "gathering":
        out.parts_ready = await parts_written(resources, export.id)
    elif export.status == "ready":
        out.download_url = await download_link(resources, settings, export)
    return out


@users.post(
    "/me/export",
    status_code=202,
    response_model=ExportOut,
    summary="Ask for a copy of everything the platform holds about me",
    description=EXPORT_DESCRIPTION,
    responses=problem_responses(401, 403, 409),
)
async def export_me(
    principal: CurrentPrincipal,
    request: Request,
    resources: ResourcesDep,
    service: ExportServiceDep,
) -> ExportOut:
    return await _export_out(await service.request(principal, None), request, resources)


@users.get(
    "/me/export",
    response_model=ExportOut,
    summary="Where my latest export stands, and its link once ready",
    responses=problem_responses(401, 403, 404),
)
async def my_export(
    principal: CurrentPrincipal,
    request: Request,
    resources: ResourcesDep,
    service: ExportServiceDep,
) -> ExportOut:
    return await _export_out(await service.latest(principal, None), request, resources)


@users.post(
    "/{user_id:uuid}/export",
    status_code=202,
    response_model=ExportOut,
    summary="Export an account (ADMIN: any; a teacher: a class account of theirs)",
    description=EXPORT_DESCRIPTION,
    responses=problem_responses(401, 403, 404, 409),
)
async def export_user(
    user_id: uuid.UUID,
    principal: CurrentPrincipal,
    request: Request,
    resources: ResourcesDep,
    service: ExportServiceDep,
) -> ExportOut:
    return await _export_out(await service.request(principal, user_id), request, resources)


@users.get(
    "/{user_id:uuid}/export",
    response_model=ExportOut,
    summary="Where an account's latest export stands (as who may ask for it)",
    responses=problem_responses(401, 403, 404),
)
async def user_export(
    user_id: uuid.UUID,
    principal: CurrentPrincipal,
    request: Request,
    resources: ResourcesDep,
    service: ExportServiceDep,
) -> ExportOut:
    return await _export_out(await service.latest(principal, user_id), request, resources)


@users.delete(
    "/me",
    status_code=204,
    summary="Erase my own account (LEARNER, VOLUNTEER; staff: an ADMIN decides)",
    description="What `DELETE /v1/users/{id}` does, asked by the account holder: every "
    "session ends, the account and what it held are gone from every service "
    "(`user.erased`), a volunteer's unpublished work with it; published books keep "
    "their credit under a pseudonym. Staff accounts: 409 `staff-erased-by-admin`.",
    responses=problem_responses(401, 403, 409),
)
async def erase_me(principal: CurrentPrincipal, service: ErasureDep) -> Response:
    await service.erase_self(principal)
    return Response(status_code=204)


@users.delete(
    "/{user_id:uuid}",
    status_code=204,
    summary="Erase a learner account (its teacher for a class account; ADMIN for any, "
    "and volunteers)",
    description="The name, username and email are gone at once; every session ends; "
    "`user.erased` makes delivery drop the learner's reading and entitlements, and "
    "content a volunteer's unpublished work (published credits take a pseudonym). "
    "Figures in metrics stay, counted under an id that names nobody. Other staff "
    "accounts: 409 (an ADMIN changes their role first).",
    responses=problem_responses(401, 403, 404, 409),
)
async def erase_user(
    user_id: uuid.UUID, principal: CurrentPrincipal, service: ErasureDep
) -> Response:
    await service.erase_account(principal, user_id)
    return Response(status_code=204)
