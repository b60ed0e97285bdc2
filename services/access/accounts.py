"""Accounts: registration, sign-in, tokens and sessions, and the audit trail.
Who may change users and roles is users.py; how failed sign-ins are counted and
slowed, sign_in_limits.py.

No web framework here and no commit: the caller's unit of work commits.
Authorization inside access always uses the role stored now, not the one in
the caller's token, so a demotion takes effect at once here. Entitlements
(entitlements.py) and decisions (decisions.py) build on these rules.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError

from services.access.devices import KnownDevices
from services.access.emails import normalize_email
from services.access.models import AuditEntry, RefreshToken, User
from services.access.passwords import PasswordHashing, password_policy, password_problems
from services.access.profiles import ProfileCache
from services.access.repository import AccessRepository
from services.access.schemas import TokenPair
from services.access.settings import AccessSettings
from services.access.sign_in_limits import SignInLimits, address_key
from services.access.tokens import TokenIssuer, hash_refresh_secret, new_refresh_secret
from shared.bus.outbox import record_event
from shared.clients.db import UnitOfWorkSession, unit_of_work_session
from shared.clients.decision_cache import DecisionCache
from shared.clients.denylist import TokenDenyList
from shared.clients.ratelimit import RateLimiter
from shared.contracts.clock import now_utc
from shared.contracts.errors import (
    Forbidden,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from shared.contracts.events import UserErased, UserLoggedIn, UserRegistered
from shared.contracts.roles import Role
from shared.http.auth import Principal, session_key

INVALID_LOGIN = "Invalid email or password."


log = structlog.get_logger(__name__)


def learner_row(
    display_name: str,
    password_hash: str,
    now: datetime,
    *,
    email: str | None = None,
    username: str | None = None,
    home_class_id: uuid.UUID | None = None,
) -> User:
    """A LEARNER account's row, not yet stored anywhere."""
    return User(
        id=uuid.uuid4(),
        email=email,
        username=username,
        home_class_id=home_class_id,
        display_name=display_name,
        password_hash=password_hash,
        role=Role.LEARNER.value,
        review_languages=[],
        reading_languages=[],
        # A class account (its teacher's doing) stands under the school's consent.
        consent="school" if home_class_id is not None else "not-asked",
        created_at=now,
        updated_at=now,
    )


@dataclass
class AccountService:
    repository: AccessRepository
    settings: AccessSettings
    hashing: PasswordHashing
    issuer: TokenIssuer
    limiter: RateLimiter
    devices: KnownDevices
    decisions: DecisionCache
    denylist: TokenDenyList
    profiles: ProfileCache

    @property
    def session(self) -> UnitOfWorkSession:
        return unit_of_work_session(self.repository.session)

    @property
    def limits(self) -> SignInLimits:
        return SignInLimits(self.limiter, self.settings)

    async def register(
        self,
        *,
        email: str,
        password: str,
        display_name: str,
        client_ip: str | None,
        consent: str = "not-asked",
        checks: Callable[[str], Awaitable[None]] | None = None,
        on_created: Callable[[User], None] | None = None,
    ) -> User:
        """A new LEARNER account. `checks` runs on the canonical email before any
        cost is paid; `on_created` in the account's own savepoint, only for an
        account really stored (consent.py asks the parent there)."""
        email = normalize_email(email)
        self._check_password(password, email)
        if checks is not None:
            await checks(email)
        await self.limits.hold_registration(client_ip)
        # Hashed before the first query, so no database connection waits on argon2
        # (~50 ms of CPU): a burst of sign-ups queues on the hashers, not on the
        # pool every other request needs. (A taken email costs the same time.)
        password_hash = await self.hashing.hash(password)
        now = now_utc()
        if await self.repository.user_by_email(email) is None:
            try:
                # Written now, in a savepoint: a sign-up for the same address at the
                # same moment loses on the unique email and gets the answer below,
                # not a 409 that would say the address is taken.
                async with self.session.begin_nested():
                    user = self.new_learner(display_name, password_hash, now, email=email)
                    user.consent = consent
                    await self.session.flush()
                    if on_created is not None:
                        on_created(user)
                        await self.session.flush()
            except IntegrityError:
                pass
            else:
                return user
        # The same answer as for a new email (#37 F14: a 409 told anyone which
        # addresses have accounts): an account-shaped answer that is stored nowhere.
        # The owner learns of it by mail once the platform sends mail; the one who
        # asked signs in and is refused, as with any wrong password.
        log.info("sign-up for an address that has an account, answered as new")
        user = learner_row(display_name, password_hash, now, email=email)
        user.consent = consent
        return user

    def new_learner(
        self,
        display_name: str,
        password_hash: str,
        now: datetime,
        *,
        email: str | None = None,
        username: str | None = None,
        home_class_id: uuid.UUID | None = None,
    ) -> User:
        """A new LEARNER account, announced: with an email, or a class account (#19)."""
        user = learner_row(
            display_name, password_hash, now, email=email, username=username,
            home_class_id=home_class_id,
        )  # fmt: skip
        self.repository.add(user)
        record_event(self.session, UserRegistered(user_id=user.id, role=Role.LEARNER))
        return user

    def _check_password(self, password: str, email: str) -> None:
        problems = password_problems(
            password, email=email, min_length=self.settings.password_min_length
        )
        if problems:
            policy = password_policy(self.settings.password_min_length)
            raise Unprocessable(
                "The password must " + "; ".join(problems) + f". (A password needs {policy}.)",
                code="weak-password",
                requirements=problems,
            )

    async def login(
        self, *, email: str, password: str, client_ip: str | None, device_token: str | None = None
    ) -> TokenPair:
        """Sign in; limited per address, per account *and* address, and, under an attack
        from many addresses, to devices that signed in before (README: Sign-in limits)."""
        email = normalize_email(email)
        async with self.limits.address_attempt(client_ip):
            return await self._login(email, password, client_ip, device_token)

    async def _login(
        self, email: str, password: str, client_ip: str | None, device_token: str | None
    ) -> TokenPair:
        pair, account = f"pair:{email}|{address_key(client_ip)}", f"account:{email}"
        async with self.limits.failure_gate(
            pair,
            limit=self.settings.login_failures_per_account,
            refusal="Too many failed sign-ins for this account from this address.",
        ):
            known_device = self.devices.recognises(device_token, email)
            by_account = await self.limiter.peek(account)
            if (
                by_account.count >= self.settings.login_failures_per_account_total
                and not known_device
            ):
                raise TooManyRequests(
                    "This account is refusing sign-ins from new devices for a while (too "
                    "many failed attempts from many addresses). A device that signed in "
                    "before can still sign in.",
                    code="new-devices-paused",
                    retry_after=by_account.retry_after,
                )
            found = await self.repository.user_by_email(email)
            user_id, stored_hash = (found.id, found.password_hash) if found else (None, None)
            # Nothing is written yet: the connection goes back to the pool before
            # argon2's ~50 ms, so a burst of sign-ins (or a guessing run) queues on
            # the hashers, never on the pool every other request needs.
            await self.session.rollback()
            # An unknown email is verified against a decoy hash: same work, same answer.
            if not await self.hashing.verify(stored_hash, password):
                await self.limiter.hit(account, window_seconds=self.settings.login_window_seconds)
                raise Unauthorized(INVALID_LOGIN, code="invalid-credentials")
            user = await self.session.get(User, user_id)
            if user is None or user.password_hash != stored_hash:  # changed meanwhile
                raise Unauthorized(INVALID_LOGIN, code="invalid-credentials")
            if user.consent == "pending":
                # Told only to whoever knows the password: the child, waiting.
                raise Forbidden(
                    "A parent or guardian has not agreed yet: they were sent a mail with "
                    "a link to agree. This account can sign in once they have.",
                    code="parental-consent-pending",
                )
            # This address may try again from scratch; the account-wide count is kept
            # (the owner signing in does not end someone else's guessing).
            await self.limiter.reset(pair)
            tokens = await self.signed_in(user, password)
            # Kept if the device already had one for this account, else a new one.
            tokens.device_token = device_token if known_device else self.devices.issue(email)
            return tokens

    async def signed_in(self, user: User, password: str) -> TokenPair:
        """What every successful sign-in does: the hash brought up to date, the
        sign-in recorded, a new session's tokens."""
        if self.hashing.needs_rehash(user.password_hash):
            user.password_hash = await self.hashing.hash(password)
        record_event(self.session, UserLoggedIn(user_id=user.id, role=Role(user.role)))
        return await self._issue_pair(user, family_id=uuid.uuid4())

    async def _issue_pair(self, user: User, *, family_id: uuid.UUID) -> TokenPair:
        ttl = timedelta(seconds=self.settings.access_token_ttl_seconds)
        access = await self.issuer.issue(
            subject=str(user.id), role=Role(user.role), ttl=ttl, session_id=str(family_id)
        )
        secret, secret_hash = new_refresh_secret()
        now = now_utc()
        refresh = RefreshToken(
            id=uuid.uuid4(),
            family_id=family_id,
            user_id=user.id,
            secret_hash=secret_hash,
            issued_at=now,
            expires_at=now + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
        )
        self.repository.add(refresh)
        return TokenPair(
            access_token=access.token,
            refresh_token=f"{refresh.id}.{secret}",
            expires_in=self.settings.access_token_ttl_seconds,
        )

    async def refresh(self, refresh_token: str) -> TokenPair:
        row = await self._refresh_row(refresh_token)
        now = now_utc()
        if row.revoked_at is not None:
            raise Unauthorized("This refresh token has been revoked.", code="invalid-refresh")
        if row.used_at is not None:
            # Presented twice: one of the two holders is a thief. End the whole chain,
            # and the access tokens it has handed out with it.
            await self.end_session(row.family_id)
            raise Unauthorized(
                "This refresh token was already used; every session of its chain is now revoked.",
                code="refresh-token-reused",
                commit_changes=True,
            )
        if row.expires_at <= now:
            raise Unauthorized("This refresh token has expired.", code="invalid-refresh")
        user = await self.repository.user(row.user_id)
        if user is None:
            raise Unauthorized("The account no longer exists.", code="invalid-refresh")
        row.used_at = now
        return await self._issue_pair(user, family_id=row.family_id)

    async def _refresh_row(self, refresh_token: str) -> RefreshToken:
        token_id, _, secret = refresh_token.partition(".")
        try:
            row = await self.repository.refresh_token(uuid.UUID(token_id))
        except ValueError:
            row = None
        if row is None or not hmac.compare_digest(row.secret_hash, hash_refresh_secret(secret)):
            raise Unauthorized("This refresh token is not valid.", code="invalid-refresh")
        return row

    async def logout(self, principal: Principal, refresh_token: str | None) -> None:
        if principal.kind != "user" and refresh_token:
            # A service may revoke its own credential, but it has no refresh chain,
            # and must never end a person's.
            raise Forbidden("A service credential has no refresh token to revoke.")
        await self.denylist.deny(principal.token_id, principal.expires_at)
        if refresh_token:
            row = await self._refresh_row(refresh_token)
            if row.user_id != principal.user_id:
                raise Forbidden("That refresh token belongs to someone else.")
            await self.end_session(row.family_id)
        if principal.session_id:
            # Signing out ends the sign-in: its refresh token can mint nothing more,
            # even when the client did not send it.
            await self.end_session(uuid.UUID(principal.session_id))

    async def end_session(self, family_id: uuid.UUID) -> None:
        """Revoke a refresh chain and refuse every access token it issued."""
        now = now_utc()
        await self.repository.revoke_family(family_id, now)
        ttl = timedelta(seconds=self.settings.access_token_ttl_seconds)
        await self.denylist.deny(session_key(str(family_id)), now + ttl)

    async def issue_service_token(
        self, client_id: str, client_secret: str, client_ip: str | None
    ) -> tuple[str, int]:
        expected = self.settings.service_clients.get(client_id)
        # compare_digest against a dummy for unknown ids, so timing tells nothing.
        known = expected.get_secret_value() if expected else "unknown-client"
        if not hmac.compare_digest(known.encode(), client_secret.encode()) or expected is None:
            # Wrong secrets are limited per address; a right one never is: the
            # services share their address with whoever else is on it (all of the
            # embedded run is 127.0.0.1), and a guesser there must not cut them
            # off. Secrets are long and random, so the limit costs guessing nothing
            # it had a chance at; it stops the noise.
            await self.limits.count_address(
                "service-token",
                client_ip,
                window_seconds=self.settings.login_window_seconds,
                limit=self.settings.service_token_failures_per_ip,
                refusal="Too many wrong client secrets from this address.",
            )
            raise Unauthorized("Unknown client or wrong secret.", code="invalid-client")
        ttl = self.settings.service_token_ttl_seconds
        issued = await self.issuer.issue(
            subject=f"service:{client_id}", role=None, ttl=timedelta(seconds=ttl), kind="service"
        )
        return issued.token, ttl

    async def current_user(self, principal: Principal) -> User:
        if principal.kind != "user":
            raise Forbidden("This route is for people, not services.")
        user = await self.repository.user(principal.user_id)
        if user is None:
            raise Unauthorized("The account no longer exists.")
        return user

    async def require_role(self, principal: Principal, minimum: Role) -> User:
        """The caller's account, if its *current* role is at least `minimum`."""
        user = await self.current_user(principal)
        if not Role(user.role).at_least(minimum):
            raise Forbidden(f"This needs the {minimum.value} role or higher.")
        return user

    def audit(
        self,
        actor_id: uuid.UUID | None,
        action: str,
        subject_type: str,
        subject_id: uuid.UUID,
        before: dict[str, object] | None,
        after: dict[str, object] | None,
    ) -> None:
        self.repository.add(
            AuditEntry(
                id=uuid.uuid4(),
                actor_id=actor_id,
                action=action,
                subject_type=subject_type,
                subject_id=subject_id,
                before=_jsonable(before),
                after=_jsonable(after),
                at=now_utc(),
            )
        )

    async def erase(self, user: User, erased_by: uuid.UUID | None, reason: str) -> None:
        """What erasing an account does, whoever asks (#19, #41): every session ends at
        once, the row goes (name, email, tokens, memberships, entitlements, consent
        with it), `user.erased` tells the other services to drop what they hold, and
        the audit log keeps ids and the reason only."""
        for session_id in await self.repository.live_sessions(user.id, now_utc()):
            await self.end_session(session_id)
        self.audit(erased_by, "user.erased", "user", user.id, None, {"reason": reason})
        await self.repository.cancel_exports(user.id)
        record_event(self.session, UserErased(user_id=user.id, erased_by=erased_by))
        await self.repository.delete(user)
        self.invalidate_user_after_commit(user.id)

    def invalidate_user_after_commit(self, user_id: uuid.UUID) -> None:
        async def invalidate() -> None:
            self.profiles.drop(user_id)
            await self.decisions.invalidate_user(user_id)

        self.session.after_commit(invalidate)


def _jsonable(values: dict[str, object] | None) -> dict[str, object] | None:
    if values is None:
        return None
    return {k: _json_value(v) for k, v in values.items()}


def _json_value(value: object) -> object:
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if value is not None else None
