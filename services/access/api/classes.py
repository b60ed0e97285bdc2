"""Classes: a teacher's classes, their learners, join codes and assignments, and
class accounts' own sign-in and sign-up (on /v1/auth, beside the other sign-ins)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from services.access.api.auth import token_answer
from services.access.class_report import ClassProgress, class_progress, progress_csv
from services.access.components import ComponentsDep
from services.access.dependencies import (
    ClassAccountsDep,
    ClassServiceDep,
)
from services.access.schemas import (
    AssignmentCreate,
    AssignmentOut,
    ClassAccountOut,
    ClassCreate,
    ClassCredentials,
    ClassJoin,
    ClassMemberOut,
    ClassOut,
    ClassRegistration,
    JoinCodeRotation,
    JoinedClass,
    LearnerNames,
    NewLearnerOut,
    NewLearners,
    PasswordResetOut,
    TokenPair,
)
from shared.http.asgi import client_ip
from shared.http.pagination import Page
from shared.http.problems import problem_responses
from shared.service.deps import CurrentPrincipal, OnceDep, PageSize

classes = APIRouter(prefix="/v1/classes", tags=["classes"])
class_auth = APIRouter(prefix="/v1/auth", tags=["auth"])


def _class_out(school_class: object, learner_count: int) -> ClassOut:
    return ClassOut.model_validate(school_class).model_copy(update={"learner_count": learner_count})


@class_auth.post(
    "/class-login",
    summary="Sign in with a class code, a username and a password (class accounts)",
    description="For children without email. Failed sign-ins are limited per address "
    "(as every sign-in) and per class account from every address "
    "(`ACCESS_CLASS_LOGIN_FAILURES_PER_ACCOUNT`): past either limit one attempt every "
    "`ACCESS_LOGIN_SLOWED_SECONDS` is still checked (429 `sign-ins-slowed` with "
    "`Retry-After` otherwise), so the right password gets in; the teacher can reset it. "
    "A wrong code, username or password get the same answer.",
    response_model=TokenPair,
    responses=problem_responses(401, 422, 429),
)
async def class_login(
    body: ClassCredentials, request: Request, service: ClassAccountsDep
) -> Response:
    return token_answer(
        await service.login(
            code=body.code,
            username=body.username,
            password=body.password,
            client_ip=client_ip(request.scope),
        )
    )


@class_auth.post(
    "/class-register",
    status_code=201,
    summary="Make a class account with the class's code (no email)",
    description="The username is made from the display name and answered here: sign in "
    "with the code, it and the password. Limited per address as every sign-up.",
    responses=problem_responses(404, 409, 422, 429),
)
async def class_register(
    body: ClassRegistration, request: Request, service: ClassServiceDep
) -> ClassAccountOut:
    user, username, school_class = await service.register(
        code=body.code,
        display_name=body.display_name,
        password=body.password,
        client_ip=client_ip(request.scope),
    )
    return ClassAccountOut(
        user_id=user.id, display_name=user.display_name, username=username, class_id=school_class.id
    )


@classes.post(
    "",
    status_code=201,
    response_model=ClassOut,
    summary="Create a class (TEACHER and up); it gets its join code",
    responses=problem_responses(401, 403, 422),
)
async def create_class(
    body: ClassCreate, principal: CurrentPrincipal, once: OnceDep, service: ClassServiceDep
) -> JSONResponse:
    async def create() -> ClassOut:
        return _class_out(await service.create(principal, name=body.name, grade=body.grade), 0)

    return await once.respond(body, create, status_code=201)


@classes.get(
    "",
    summary="The caller's classes (TEACHER; every class for an ADMIN), oldest first",
    responses=problem_responses(401, 403, 422),
)
async def list_classes(
    principal: CurrentPrincipal,
    service: ClassServiceDep,
    archived: bool = False,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: PageSize = 50,
) -> Page[ClassOut]:
    found, counts, next_cursor = await service.list_classes(
        principal, archived=archived, cursor=cursor, limit=limit
    )
    return Page(items=[_class_out(c, counts.get(c.id, 0)) for c in found], next_cursor=next_cursor)


@classes.get(
    "/{class_id:uuid}",
    summary="One of the caller's classes (another teacher's is a 404)",
    responses=problem_responses(401, 403, 404),
)
async def get_class(
    class_id: uuid.UUID, principal: CurrentPrincipal, service: ClassServiceDep
) -> ClassOut:
    school_class, count = await service.get(principal, class_id)
    return _class_out(school_class, count)


@classes.post(
    "/{class_id:uuid}/join-code",
    summary="Rotate the join code: the old one no longer joins nor signs in",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def rotate_join_code(
    class_id: uuid.UUID,
    principal: CurrentPrincipal,
    service: ClassServiceDep,
    body: JoinCodeRotation | None = None,
) -> ClassOut:
    days = body.expires_in_days if body else None
    school_class = await service.rotate_code(principal, class_id, expires_in_days=days)
    return _class_out(school_class, await service.learner_count(class_id))


@classes.post(
    "/{class_id:uuid}/archive",
    summary="Archive a class: nobody joins it any more; its learners keep their accounts",
    responses=problem_responses(401, 403, 404),
)
async def archive_class(
    class_id: uuid.UUID, principal: CurrentPrincipal, service: ClassServiceDep
) -> ClassOut:
    school_class = await service.archive(principal, class_id)
    return _class_out(school_class, await service.learner_count(class_id))


@classes.post(
    "/{class_id:uuid}/learners",
    status_code=201,
    summary="Create class accounts: display names in, usernames and first passwords out",
    description="Up to 100 at once. The passwords are shown in this answer only (no "
    "Idempotency-Key replay: a replay would have to keep them); a retried request makes "
    "new accounts, which the teacher sees in the class list.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def add_learners(
    class_id: uuid.UUID, body: LearnerNames, principal: CurrentPrincipal, service: ClassServiceDep
) -> NewLearners:
    school_class, created = await service.add_learners(principal, class_id, body.display_names)
    return NewLearners(
        class_id=class_id,
        join_code=school_class.join_code,
        learners=[
            NewLearnerOut(
                user_id=n.user.id,
                display_name=n.user.display_name,
                username=n.user.username or "",
                password=n.password,
            )
            for n in created
        ],
    )


@classes.get(
    "/{class_id:uuid}/learners",
    summary="The class's learners (its teacher and ADMIN only)",
    responses=problem_responses(401, 403, 404),
)
async def class_learners(
    class_id: uuid.UUID, principal: CurrentPrincipal, service: ClassServiceDep
) -> list[ClassMemberOut]:
    return [
        ClassMemberOut(
            user_id=user.id,
            display_name=user.display_name,
            username=user.username if user.home_class_id == class_id else None,
            joined_at=joined_at,
        )
        for user, joined_at in await service.members(principal, class_id)
    ]


@classes.delete(
    "/{class_id:uuid}/learners/{user_id:uuid}",
    status_code=204,
    summary="Take a learner out of the class (their account stays)",
    responses=problem_responses(401, 403, 404),
)
async def remove_learner(
    class_id: uuid.UUID, user_id: uuid.UUID, principal: CurrentPrincipal, service: ClassServiceDep
) -> Response:
    await service.remove_member(principal, class_id, user_id)
    return Response(status_code=204)


@classes.post(
    "/{class_id:uuid}/learners/{user_id:uuid}/password",
    summary="A new password for a class account of this class; its sessions end",
    responses=problem_responses(401, 403, 404),
)
async def reset_learner_password(
    class_id: uuid.UUID, user_id: uuid.UUID, principal: CurrentPrincipal, service: ClassServiceDep
) -> PasswordResetOut:
    user, password = await service.reset_password(principal, class_id, user_id)
    return PasswordResetOut(user_id=user.id, username=user.username, password=password)


@classes.post(
    "/join",
    summary="Join a class with its code (a signed-in LEARNER)",
    responses=problem_responses(401, 403, 404, 422, 429),
)
async def join_class(
    body: ClassJoin, request: Request, principal: CurrentPrincipal, service: ClassServiceDep
) -> JoinedClass:
    school_class = await service.join(principal, body.code, client_ip(request.scope))
    return JoinedClass(class_id=school_class.id, name=school_class.name, grade=school_class.grade)


@classes.post(
    "/{class_id:uuid}/assignments",
    status_code=201,
    response_model=AssignmentOut,
    summary="Assign a published book to the class: every learner gets it, later ones too",
    description="Entitlements `class_assignment`, announced as `entitlement.granted`, so "
    "delivery follows within moments. A learner who already has the book keeps what they "
    "had. `Idempotency-Key` honoured.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def assign_book(
    class_id: uuid.UUID,
    body: AssignmentCreate,
    principal: CurrentPrincipal,
    once: OnceDep,
    service: ClassServiceDep,
) -> JSONResponse:
    async def assign() -> AssignmentOut:
        assignment, granted = await service.assign(principal, class_id, body.book_id, body.due_at)
        return AssignmentOut.model_validate(assignment).model_copy(update={"granted": granted})

    return await once.respond(body, assign, status_code=201)


@classes.get(
    "/{class_id:uuid}/assignments",
    summary="The class's assignments, soonest due first",
    responses=problem_responses(401, 403, 404),
)
async def class_assignments(
    class_id: uuid.UUID, principal: CurrentPrincipal, service: ClassServiceDep
) -> list[AssignmentOut]:
    return [AssignmentOut.model_validate(a) for a in await service.assignments(principal, class_id)]


@classes.get(
    "/{class_id:uuid}/progress",
    response_model=ClassProgress,
    summary="The class report: each learner and assigned book, opened, read and finished",
    description="The class's TEACHER (or an ADMIN). Names from access, reading figures from "
    "the metrics service (they follow reading by seconds: `figures_as_of`). JSON, or CSV "
    "for a spreadsheet with `Accept: text/csv` or `?format=csv` (the same rows; a cell "
    "that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'` so "
    "that a spreadsheet never runs it as a formula). Metrics down or busy: 503 with "
    "Retry-After, never a report of zeros.",
    responses={
        **problem_responses(401, 403, 404, 422, 503),
        200: {"content": {"application/json": {}, "text/csv": {}}},
    },
)
async def class_progress_report(
    class_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    service: ClassServiceDep,
    components: ComponentsDep,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
) -> Response:
    school_class, members, assignments, titles = await service.report_basis(principal, class_id)
    figures = await components.class_figures.of_class(class_id)
    progress = class_progress(school_class, members, assignments, titles, figures)
    wants_csv = format == "csv" or (
        format is None and "text/csv" in request.headers.get("accept", "")
    )
    if not wants_csv:
        return JSONResponse(progress.model_dump(mode="json"))
    return Response(
        progress_csv(progress),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="class-{class_id}-progress.csv"',
            "Cache-Control": "no-store",
        },
    )


@classes.delete(
    "/{class_id:uuid}/assignments/{assignment_id:uuid}",
    status_code=204,
    summary="Take a book back from the class: what this assignment gave ends",
    description="A learner who has the book otherwise (a purchase, another class) keeps it.",
    responses=problem_responses(401, 403, 404),
)
async def unassign_book(
    class_id: uuid.UUID,
    assignment_id: uuid.UUID,
    principal: CurrentPrincipal,
    service: ClassServiceDep,
) -> Response:
    await service.unassign(principal, class_id, assignment_id)
    return Response(status_code=204)
