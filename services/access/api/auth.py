"""Signing in and out: accounts' tokens (a JSON form and the OAuth 2.0 token
endpoint), refresh, service tokens, and the keys that verify them."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from services.access.components import ComponentsDep
from services.access.dependencies import AccountServiceDep, ConsentServiceDep
from services.access.schemas import (
    Credentials,
    LogoutRequest,
    OAuthError,
    RefreshRequest,
    Registration,
    ServiceCredentials,
    ServiceToken,
    TokenPair,
    UserOut,
)
from shared.contracts.errors import Unauthorized
from shared.http.asgi import client_ip
from shared.http.openapi import NOT_A_PROBLEM
from shared.http.problems import problem_responses
from shared.service.deps import CurrentPrincipal

auth = APIRouter(prefix="/v1/auth", tags=["auth"])
jwks = APIRouter(tags=["auth"])


@auth.post(
    "/register",
    status_code=201,
    summary="Create a LEARNER account (under 13: pending until a parent agrees)",
    description="`birth_year` is asked of everyone. Whoever could still be under 13 gives "
    "`parent_email`; the account answers `consent: pending`, cannot sign in (403 "
    "`parental-consent-pending`), and the parent is mailed a link that expires after "
    "`ACCESS_CONSENT_DAYS` (`/v1/auth/consents/{token}`; unanswered, the account is erased). "
    "Limited per address (`ACCESS_REGISTRATIONS_PER_IP` an hour; 429 with "
    "Retry-After). An email that already has an account gets the same answer as a new "
    "one and nothing is stored (no account enumeration): sign in next, and use the "
    "token's account (`GET /v1/users/me`).",
    responses=problem_responses(422, 429),
)
async def register(body: Registration, request: Request, consents: ConsentServiceDep) -> UserOut:
    user = await consents.register(
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        birth_year=body.birth_year,
        parent_email=body.parent_email,
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
