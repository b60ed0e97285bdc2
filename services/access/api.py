"""HTTP endpoints of the access service (thin: the rules live in accounts.py,
entitlements.py and decisions.py)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from services.access.class_report import class_progress, progress_csv
from services.access.components import ComponentsDep, app_components
from services.access.decisions import DecisionService
from services.access.dependencies import (
    AccountServiceDep,
    ClassServiceDep,
    DecisionServiceDep,
    EntitlementServiceDep,
    account_service,
)
from services.access.schemas import (
    AssignmentCreate,
    AssignmentOut,
    AuditEntryOut,
    BulkEntitlementGrant,
    BulkGrantResult,
    ClassAccountOut,
    ClassCreate,
    ClassCredentials,
    ClassJoin,
    ClassMemberOut,
    ClassOut,
    ClassProgress,
    ClassRegistration,
    Credentials,
    DecisionBatch,
    DecisionBatchResult,
    EntitlementGrant,
    EntitlementOut,
    JoinCodeRotation,
    JoinedClass,
    LearnerNames,
    LogoutRequest,
    NewLearnerOut,
    NewLearners,
    OAuthError,
    PasswordResetOut,
    ReadableBook,
    RefreshRequest,
    Registration,
    ReviewLanguages,
    RoleChange,
    ServiceCredentials,
    ServiceToken,
    TokenPair,
    UserOut,
)
from shared.clients.db import unit_of_work
from shared.contracts.decisions import Decision, DecisionRequest
from shared.contracts.errors import Unauthorized
from shared.contracts.roles import Role
from shared.http.asgi import client_ip
from shared.http.auth import CallingService, CurrentPrincipal
from shared.http.openapi import NOT_A_PROBLEM
from shared.http.pagination import MAX_PAGE_SIZE, Page
from shared.http.problems import problem_responses
from shared.resources import ResourcesDep, resources_of
from shared.service.idempotency import OnceDep

PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]

auth = APIRouter(prefix="/v1/auth", tags=["auth"])
users = APIRouter(prefix="/v1/users", tags=["users"])
entitlements = APIRouter(prefix="/v1/entitlements", tags=["entitlements"])
decisions = APIRouter(prefix="/v1/decisions", tags=["decisions (internal)"])
classes = APIRouter(prefix="/v1/classes", tags=["classes"])
jwks = APIRouter(tags=["auth"])


@auth.post(
    "/register",
    status_code=201,
    summary="Create a LEARNER account",
    description="Limited per address (`ACCESS_REGISTRATIONS_PER_IP` an hour; 429 with "
    "Retry-After). An email that already has an account gets the same answer as a new "
    "one and nothing is stored (no account enumeration): sign in next, and use the "
    "token's account (`GET /v1/users/me`).",
    responses=problem_responses(422, 429),
)
async def register(body: Registration, request: Request, service: AccountServiceDep) -> UserOut:
    user = await service.register(
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        client_ip=client_ip(request.scope),
    )
    return UserOut.model_validate(user)


@auth.post(
    "/login",
    summary="Exchange email and password for an access and a refresh token",
    description="Failed sign-ins are limited per address, per account and address, and, "
    "while an account is guessed at from many addresses, to devices that signed in before "
    "(send `device_token`); each limit answers 429 with Retry-After. An unknown email and a "
    "wrong password get the same answer.",
    response_model=TokenPair,
    responses=problem_responses(401, 422, 429),
)
async def login(body: Credentials, request: Request, service: AccountServiceDep) -> Response:
    return token_answer(
        await service.login(
            email=body.email,
            password=body.password,
            client_ip=client_ip(request.scope),
            device_token=body.device_token,
        )
    )


@auth.post(
    "/token",
    response_model=TokenPair,
    summary="OAuth 2.0 password grant, for reading apps (OPDS Authentication)",
    description="`application/x-www-form-urlencoded`: `grant_type=password`, `username` (the "
    "account's email), `password`. The same sign-in as `/login`, with its limits; the "
    "answer is the same token pair (`token_type` bearer), never cached. Refusals are as "
    "RFC 6749 5.2 has them: 400 with `error` `invalid_grant` (wrong email or password), "
    "`unsupported_grant_type` or `invalid_request` (and `error_description`); a slowed "
    "address or account is a 429 problem with Retry-After. Named by content's OPDS "
    "authentication document (`/opds/authentication`).",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["grant_type", "username", "password"],
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["password"]},
                            "username": {"type": "string", "format": "email", "maxLength": 320},
                            "password": {"type": "string", "minLength": 1, "maxLength": 1024},
                        },
                    }
                }
            },
        }
    },
    responses={
        400: {"description": "RFC 6749 5.2", "model": OAuthError, NOT_A_PROBLEM: True},
        **problem_responses(429),
    },
)
async def oauth_token(request: Request, service: AccountServiceDep) -> Response:
    if request.headers.get("content-type", "").split(";")[0].strip() != FORM:
        return oauth_error("invalid_request", f"Send the grant as {FORM}.")
    try:
        fields = parse_qs((await request.body()).decode(), max_num_fields=10, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return oauth_error("invalid_request", "The form cannot be read.")

    def one(name: str, most: int) -> str | None:
        values = fields.get(name, [])
        return values[0] if len(values) == 1 and 0 < len(values[0]) <= most else None

    grant, username, password = one("grant_type", 40), one("username", 320), one("password", 1024)
    # The grant first (RFC 6749 5.2): another grant's fields are not this one's.
    if grant is not None and grant != "password":
        return oauth_error("unsupported_grant_type", "Only grant_type=password is offered.")
    if grant is None or username is None or password is None:
        return oauth_error(
            "invalid_request",
            "grant_type, username and password are each required, once (username at most "
            "320 characters, password at most 1024).",
        )
    try:
        tokens = await service.login(
            email=username, password=password, client_ip=client_ip(request.scope), device_token=None
        )
    except Unauthorized as refused:
        return oauth_error("invalid_grant", refused.detail or "Invalid email or password.")
    return token_answer(tokens)


def oauth_error(error: str, description: str) -> JSONResponse:
    """An RFC 6749 5.2 error answer: 400, `error` and `error_description`, not cached."""
    return JSONResponse(
        OAuthError(error=error, error_description=description).model_dump(),
        status_code=400,
        headers=NOT_CACHED,
    )


def token_answer(tokens: TokenPair) -> JSONResponse:
    """Tokens, never kept by a cache on the way (RFC 6749 5.1)."""
    return JSONResponse(tokens.model_dump(mode="json"), headers=NOT_CACHED)


NOT_CACHED = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM = "application/x-www-form-urlencoded"


@auth.post(
    "/refresh",
    summary="Rotate a refresh token: a new pair; the old refresh token is spent",
    description="Presenting a spent refresh token revokes every token of its chain.",
    response_model=TokenPair,
    responses=problem_responses(401, 422),
)
async def refresh(body: RefreshRequest, service: AccountServiceDep) -> Response:
    return token_answer(await service.refresh(body.refresh_token))


@auth.post(
    "/logout",
    status_code=204,
    summary="Revoke this access token everywhere (and its refresh chain, if given)",
    responses=problem_responses(401, 403),
)
async def logout(
    principal: CurrentPrincipal, service: AccountServiceDep, body: LogoutRequest | None = None
) -> Response:
    await service.logout(principal, body.refresh_token if body else None)
    return Response(status_code=204)


@auth.post(
    "/service-token",
    summary="Client-credentials token for a platform service (internal)",
    description="Internal: the services call it at access's own address; the gateway "
    "and the load balancer answer 404. Wrong secrets are limited per address (429 "
    "with Retry-After).",
    responses=problem_responses(401, 422, 429),
)
async def service_token(
    body: ServiceCredentials, request: Request, service: AccountServiceDep
) -> ServiceToken:
    token, ttl = await service.issue_service_token(
        body.client_id,
        body.client_secret,
        client_ip=client_ip(request.scope),
    )
    return ServiceToken(access_token=token, expires_in=ttl)


@jwks.get("/.well-known/jwks.json", summary="Public keys that verify access tokens")
async def jwks_document(components: ComponentsDep) -> JSONResponse:
    return JSONResponse(
        await components.keys.jwks(), headers={"Cache-Control": "public, max-age=60"}
    )


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
    service: AccountServiceDep,
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
    service: AccountServiceDep,
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
    body: ReviewLanguages, principal: CurrentPrincipal, service: AccountServiceDep
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
    service: AccountServiceDep,
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
    user_id: uuid.UUID, body: RoleChange, principal: CurrentPrincipal, service: AccountServiceDep
) -> UserOut:
    return UserOut.model_validate(await service.assign_role(principal, user_id, body.role))


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


@decisions.post(
    "",
    response_model=Decision,
    summary="May this user do this? (internal: service credential only)",
    responses=problem_responses(401, 403, 422),
)
async def decide(body: DecisionRequest, _caller: CallingService, request: Request) -> Response:
    # Hot path: a cached decision is answered with its stored JSON, with no
    # session, no service object, no response validation, no extra dependency.
    resources = resources_of(request.app)
    cached = resources.decisions.get_local_json(body)
    if cached is not None:
        return Response(cached, media_type="application/json")
    components = app_components(request.app)
    async with unit_of_work(resources.session_factory) as session:
        accounts = account_service(components, resources, session)
        decision = await DecisionService(accounts).decide(body)
    return Response(decision.model_dump_json(), media_type="application/json")


@decisions.post(
    "/batch",
    summary="Many decisions in one call (internal: service credential only)",
    responses=problem_responses(401, 403, 422),
)
async def decide_many(
    body: DecisionBatch, _caller: CallingService, service: DecisionServiceDep
) -> DecisionBatchResult:
    return DecisionBatchResult(results=[await service.decide(r) for r in body.requests])


ROUTERS = [decisions, users, entitlements, classes, auth, jwks]


# --- classes (#19) ----------------------------------------------------------------------


def _class_out(school_class: object, learner_count: int) -> ClassOut:
    return ClassOut.model_validate(school_class).model_copy(update={"learner_count": learner_count})


@auth.post(
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
    body: ClassCredentials, request: Request, service: ClassServiceDep
) -> Response:
    return token_answer(
        await service.login(
            code=body.code,
            username=body.username,
            password=body.password,
            client_ip=client_ip(request.scope),
        )
    )


@auth.post(
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


@users.delete(
    "/{user_id:uuid}",
    status_code=204,
    summary="Erase a learner account (its teacher for a class account; ADMIN for any)",
    description="The name, username and email are gone at once; every session ends; "
    "`user.erased` makes delivery drop the learner's reading and entitlements. Figures "
    "in metrics stay, counted under an id that names nobody. Staff accounts: 409.",
    responses=problem_responses(401, 403, 404, 409),
)
async def erase_user(
    user_id: uuid.UUID, principal: CurrentPrincipal, service: ClassServiceDep
) -> Response:
    await service.erase_learner(principal, user_id)
    return Response(status_code=204)
