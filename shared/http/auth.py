"""Verifying the access service's JWTs locally, and the principal dependency.

Keys come from the access service's JWKS URL and are cached in process. A token
signed with a key we have not seen triggers one refetch, at most once per
`refetch_interval`, so a rotation is picked up at once while forged tokens with
random key ids cannot make us hammer the JWKS endpoint.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

import httpx
import jwt
import structlog
from fastapi import Depends, Request
from starlette.applications import Starlette

from shared.contracts.clock import now_utc
from shared.contracts.errors import InvalidToken
from shared.contracts.roles import Role
from shared.http.problems import Forbidden, ServiceUnavailable, Unauthorized

log = structlog.get_logger(__name__)

# Asymmetric only: an HMAC algorithm would let anyone holding the public key
# sign tokens, and "none" signs nothing.
ALLOWED_ALGORITHMS = frozenset({"RS256", "EdDSA"})
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti"]
CLOCK_SKEW_SECONDS = 10


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    token_id: str
    expires_at: datetime
    kind: str = "user"  # "service" for the credential access issues to other services
    # The sign-in (refresh chain) a user's token belongs to; None for services.
    session_id: str | None = None

    @property
    def user_id(self) -> uuid.UUID:
        return uuid.UUID(self.subject)


class JwksKeyCache:
    def __init__(
        self,
        *,
        jwks_url: str,
        http: httpx.AsyncClient,
        refetch_interval: float = 30.0,
        max_age: float = 3600.0,
    ) -> None:
        self._url = jwks_url
        self._http = http
        self._refetch_interval = refetch_interval
        self._max_age = max_age
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        now = time.monotonic()
        key = self._keys.get(kid)
        if key is not None and now - self._fetched_at < self._max_age:
            return key
        if now - self._fetched_at >= self._refetch_interval or not self._keys:
            await self._refresh()
        return self._keys.get(kid)

    @property
    def holds_keys(self) -> bool:
        return bool(self._keys)

    async def prefetch(self) -> bool:
        """Fetch the keys ahead of the first request (at start-up); whether it worked.
        A failure costs nothing and is not logged (access may simply not listen
        yet): the caller retries, and the first request fetches again."""
        try:
            await self._refresh(quiet=True)
        except ServiceUnavailable:
            return False
        return bool(self._keys)

    async def _refresh(self, *, quiet: bool = False) -> None:
        async with self._lock:
            # Another request may have refreshed while we waited for the lock.
            if time.monotonic() - self._fetched_at < self._refetch_interval and self._keys:
                return
            try:
                response = await self._http.get(self._url, timeout=3.0)
                response.raise_for_status()
                keys: dict[str, jwt.PyJWK] = {}
                for data in response.json().get("keys", []):
                    try:
                        jwk = jwt.PyJWK(data)
                    except jwt.PyJWTError:
                        log.warning("ignoring unusable JWKS key", kid=data.get("kid"))
                        continue
                    if jwk.key_id:
                        keys[jwk.key_id] = jwk
            except (httpx.HTTPError, ValueError) as exc:
                # Keep the keys we had; note the attempt so we do not retry per request.
                self._fetched_at = time.monotonic()
                if not quiet:
                    log.warning("jwks fetch failed", url=self._url, error=str(exc))
                if not self._keys:
                    raise ServiceUnavailable(
                        "The signing keys cannot be fetched right now."
                    ) from exc
                return
            self._keys = keys
            self._fetched_at = time.monotonic()


class KeySource(Protocol):
    async def key(self, kid: str) -> jwt.PyJWK | None: ...


class TokenVerifier:
    """Verifies access tokens; remembers tokens it has verified until they expire.

    The memo is keyed by the whole token (signature included), so it can only
    return what a full verification returned; revocation is checked every time.
    """

    MEMO_LIMIT = 50_000

    def __init__(
        self,
        *,
        keys: KeySource,
        issuer: str,
        audience: str,
        is_revoked: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._is_revoked = is_revoked
        self._memo: dict[str, Principal] = {}

    async def verify(self, token: str) -> Principal:
        principal = self._memo.get(token)
        if principal is None or principal.expires_at <= now_utc():
            principal = await self._verify_signature_and_claims(token)
            if len(self._memo) >= self.MEMO_LIMIT:
                self._memo.clear()
            self._memo[token] = principal
        if self._is_revoked is not None:
            if await self._is_revoked(principal.token_id):
                raise InvalidToken("The token has been revoked.")
            if principal.session_id and await self._is_revoked(session_key(principal.session_id)):
                raise InvalidToken("The session this token belongs to has ended.")
        return principal

    async def _verify_signature_and_claims(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("The token is malformed.") from exc
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise InvalidToken("The token's signing algorithm is not accepted.")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("The token names no signing key.")
        key = await self._keys.key(kid)
        if key is None:
            raise InvalidToken("The token was signed by an unknown key.")
        if key.algorithm_name != algorithm:
            raise InvalidToken("The token's algorithm does not match its key.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("The token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"The token is not valid: {exc}.") from exc
        kind = str(claims.get("kind", "user"))
        if kind == "service":
            # A service acts for itself, never as a user: it gets the lowest
            # role, and require_role refuses service principals anyway.
            role = Role.LEARNER
        elif kind == "user":
            try:
                role = Role(str(claims.get("role")))
            except ValueError as exc:
                raise InvalidToken("The token carries no known role.") from exc
        else:
            raise InvalidToken("The token is of an unknown kind.")
        return Principal(
            subject=str(claims["sub"]),
            role=role,
            token_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            kind=kind,
            session_id=str(claims["sid"]) if isinstance(claims.get("sid"), str) else None,
        )


def bearer_token_of(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value; None for any other."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def current_principal(request: Request) -> Principal:
    # Reads the header itself rather than through fastapi.security.HTTPBearer:
    # every nested dependency costs the hot paths measurable time. The OpenAPI
    # security scheme is added by the app factory (see document_bearer_auth).
    return await verify_bearer(request.headers.get("authorization", ""), verifier_of(request.app))


def verifier_of(app: Starlette) -> TokenVerifier:
    """The app's token verifier (its Resources', opened in the lifespan), type-checked:
    shared.resources imports this module, so it is reached without importing it."""
    verifier = getattr(getattr(app.state, "resources", None), "verifier", None)
    if not isinstance(verifier, TokenVerifier):
        raise RuntimeError("the app has not started: no token verifier yet")
    return verifier


async def verify_bearer(authorization: str, verifier: TokenVerifier) -> Principal:
    """The principal of an Authorization header: the one check every endpoint and
    every fast path makes (signature, claims, expiry, deny-list)."""
    token = bearer_token_of(authorization)
    if token is None:
        raise Unauthorized("Send an access token as 'Authorization: Bearer <token>'.")
    return await verifier.verify(token)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def optional_principal(request: Request) -> Principal | None:
    """For public routes that show more to some: no token is anonymous, a bad one is 401."""
    if "authorization" not in request.headers:
        return None
    return await current_principal(request)


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


async def current_service(request: Request) -> Principal:
    """For internal routes: only a service credential gets through, never a user's token."""
    # Calls current_principal directly (not as a sub-dependency) to save a
    # level of dependency resolution on the internal hot path.
    principal = await current_principal(request)
    if principal.kind != "service":
        raise Forbidden("This route is for platform services only.")
    return principal


CallingService = Annotated[Principal, Depends(current_service)]


def verifies_bearer(call: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a dependency that calls `current_principal` itself (not as a
    sub-dependency), so the OpenAPI document still says its route needs a token."""
    call.verifies_bearer = True  # type: ignore[attr-defined]
    return call


def bearer_auth_of(dependant: Any) -> str | None:
    """What a route's dependency tree asks of the caller's token, for the OpenAPI
    document: "required", "optional" (public, more with a token) or None."""
    if dependant.call in (current_principal, current_service) or getattr(
        dependant.call, "verifies_bearer", False
    ):
        return "required"
    found = "optional" if dependant.call is optional_principal else None
    for dependency in dependant.dependencies:
        inner = bearer_auth_of(dependency)
        if inner == "required":
            return inner
        found = found or inner
    return found


def require_role(minimum: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets through principals of `minimum` rank or higher."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.kind != "user" or not principal.role.at_least(minimum):
            raise Forbidden(f"This needs the {minimum.value} role or higher.")
        return principal

    return check


DENIED_TOKENS_CHANNEL = "auth:denied"


def denylist_key(token_id: str) -> str:
    return f"auth:denied:{token_id}"


def session_key(session_id: str) -> str:
    """The deny-list entry that ends a whole session (every token carrying its sid)."""
    return f"sid:{session_id}"
