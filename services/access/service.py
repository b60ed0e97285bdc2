"""The access service's rules: accounts, tokens, roles, entitlements, decisions.

No web framework here and no commit: the caller's unit of work commits.
Authorization inside access always uses the role stored now, not the one in
the caller's token, so a demotion takes effect at once here.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.access.devices import KnownDevices
from services.access.emails import normalize_email
from services.access.models import AuditEntry, CatalogBook, Entitlement, RefreshToken, User
from services.access.passwords import PasswordHashing, password_policy, password_problems
from services.access.profiles import ProfileCache
from services.access.repository import AccessRepository
from services.access.schemas import (
    BulkEntitlementGrant,
    EntitlementGrant,
    EntitlementSource,
    TokenPair,
)
from services.access.settings import AccessSettings
from services.access.tokens import TokenIssuer, hash_refresh_secret, new_refresh_secret
from shared.auth import Principal, TokenDenyList, session_key
from shared.clock import now_utc
from shared.db import UnitOfWorkSession, unit_of_work_session
from shared.decisions import (
    READ_ANY_PUBLISHED,
    Action,
    BookFacts,
    Decision,
    DecisionCache,
    DecisionRequest,
    decide_book_read,
    needs_entitlement,
)
from shared.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from shared.events import (
    EntitlementGranted,
    EntitlementRevoked,
    RoleAssigned,
    UserLoggedIn,
    UserRegistered,
)
from shared.outbox import record_event
from shared.pagination import decode_time_cursor, encode_cursor
from shared.ratelimit import RateLimiter
from shared.roles import Role

# The least role each action needs; book:read has rules of its own.
ACTION_MINIMUM_ROLE = {
    Action.SUBMISSION_CREATE: Role.VOLUNTEER,
    Action.SUBMISSION_REVIEW: Role.STORY_MANAGER,
    Action.BOOK_CREATE: Role.BOOK_MANAGER,
    Action.BOOK_EDIT: Role.BOOK_MANAGER,
    Action.BOOK_PUBLISH: Role.CONTENT_ADMIN,
    Action.ENTITLEMENT_GRANT: Role.TEACHER,
    Action.METRICS_READ: Role.CONTENT_ADMIN,
    Action.USER_MANAGE: Role.ADMIN,
}
# Below this, granting is the teacher's power: only to learners, only published books.
GRANT_ANYTHING = Role.CONTENT_ADMIN
INVALID_LOGIN = "Invalid email or password."


def _address(client_ip: str | None) -> str:
    """A limit's key for an address: callers with none (in-process clients) share one."""
    return client_ip or "unknown"


@dataclass
class AccessService:
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

    # --- accounts ---------------------------------------------------------------------

    async def register(
        self, *, email: str, password: str, display_name: str, client_ip: str | None
    ) -> User:
        email = normalize_email(email)
        self._check_password(password, email)
        by_ip = await self.limiter.hit(
            f"register:{_address(client_ip)}",
            window_seconds=self.settings.registration_window_seconds,
        )
        if by_ip.exceeded(self.settings.registrations_per_ip):
            raise TooManyRequests(
                "Too many sign-ups from this address; try again later.",
                retry_after=by_ip.retry_after,
            )
        # Hashed before the first query, so no database connection waits on argon2
        # (~50 ms of CPU): a burst of sign-ups queues on the hashers, not on the
        # pool every other request needs. (A taken email costs the same time.)
        password_hash = await self.hashing.hash(password)
        if await self.repository.user_by_email(email) is not None:
            raise Conflict("An account with this email already exists.", code="email-taken")
        now = now_utc()
        user = User(
            id=uuid.uuid4(),
            email=email,
            display_name=display_name,
            password_hash=password_hash,
            role=Role.LEARNER.value,
            created_at=now,
            updated_at=now,
        )
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
        window = self.settings.login_window_seconds
        by_ip = await self.limiter.hit(f"ip:{_address(client_ip)}", window_seconds=window)
        if by_ip.exceeded(self.settings.login_attempts_per_ip):
            raise TooManyRequests(
                "Too many sign-in attempts from this address.", retry_after=by_ip.retry_after
            )
        pair, account = f"pair:{email}|{_address(client_ip)}", f"account:{email}"
        by_pair = await self.limiter.peek(pair)
        if by_pair.count >= self.settings.login_failures_per_account:
            raise TooManyRequests(
                "Too many failed sign-ins for this account from this address; try again later.",
                retry_after=by_pair.retry_after,
            )
        known_device = self.devices.recognises(device_token, email)
        by_account = await self.limiter.peek(account)
        if by_account.count >= self.settings.login_failures_per_account_total and not known_device:
            raise TooManyRequests(
                "This account is refusing sign-ins from new devices for a while (too many "
                "failed attempts from many addresses). A device that signed in before can "
                "still sign in.",
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
            await self.limiter.hit(pair, window_seconds=window)
            await self.limiter.hit(account, window_seconds=window)
            raise Unauthorized(INVALID_LOGIN, code="invalid-credentials")
        user = await self.session.get(User, user_id)
        if user is None or user.password_hash != stored_hash:  # changed meanwhile
            raise Unauthorized(INVALID_LOGIN, code="invalid-credentials")
        # This address may try again from scratch; the account-wide count is kept
        # (the owner signing in does not end someone else's guessing).
        await self.limiter.reset(pair)
        if self.hashing.needs_rehash(user.password_hash):
            user.password_hash = await self.hashing.hash(password)
        record_event(self.session, UserLoggedIn(user_id=user.id, role=Role(user.role)))
        tokens = await self._issue_pair(user, family_id=uuid.uuid4())
        # Kept if the device already had one for this account, else a new one.
        tokens.device_token = device_token if known_device else self.devices.issue(email)
        return tokens

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
            await self._end_session(row.family_id)
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
            await self._end_session(row.family_id)
        if principal.session_id:
            # Signing out ends the sign-in: its refresh token can mint nothing more,
            # even when the client did not send it.
            await self._end_session(uuid.UUID(principal.session_id))

    async def _end_session(self, family_id: uuid.UUID) -> None:
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
            count = await self.limiter.hit(
                f"service-token:{_address(client_ip)}",
                window_seconds=self.settings.login_window_seconds,
            )
            if count.exceeded(self.settings.service_token_failures_per_ip):
                raise TooManyRequests(
                    "Too many wrong client secrets from this address.",
                    retry_after=count.retry_after,
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

    # --- users and roles -----------------------------------------------------------

    async def list_users(
        self, actor: Principal, *, role: Role | None, cursor: str | None, limit: int
    ) -> tuple[list[User], str | None]:
        await self.require_role(actor, Role.ADMIN)
        after = decode_time_cursor(cursor)
        users = await self.repository.list_users(role=role, after=after, limit=limit + 1)
        next_cursor = None
        if len(users) > limit:
            users = users[:limit]
            next_cursor = encode_cursor(users[-1].created_at.isoformat(), users[-1].id)
        return users, next_cursor

    async def assign_role(self, actor: Principal, user_id: uuid.UUID, role: Role) -> User:
        admin = await self.require_role(actor, Role.ADMIN)
        admins = await self.repository.lock_admins()
        user = await self.repository.user(user_id, for_update=True)
        if user is None:
            raise NotFound("No such user.")
        previous = Role(user.role)
        if previous == role:
            return user
        if previous is Role.ADMIN and admins == [user.id]:
            raise Conflict(
                "This is the last ADMIN; make someone else ADMIN first.", code="last-admin"
            )
        user.role = role.value
        user.updated_at = now_utc()
        self._audit(admin.id, "role.assigned", "user", user.id, {"role": previous}, {"role": role})
        record_event(
            self.session,
            RoleAssigned(user_id=user.id, previous_role=previous, role=role, assigned_by=admin.id),
        )
        self._invalidate_user_after_commit(user.id)
        return user

    async def create_admin(self, *, email: str, password: str, display_name: str) -> User:
        """The first ADMIN (CLI or settings): creates the account, or promotes an existing one."""
        email = normalize_email(email)
        user = await self.repository.user_by_email(email)
        if user is None:
            user = await self.register(
                email=email, password=password, display_name=display_name, client_ip=None
            )
            await self.repository.flush()
        if user.role != Role.ADMIN.value:
            previous = Role(user.role)
            user.role = Role.ADMIN.value
            user.updated_at = now_utc()
            self._audit(
                None, "role.assigned", "user", user.id, {"role": previous}, {"role": "ADMIN"}
            )
            record_event(
                self.session,
                RoleAssigned(
                    user_id=user.id, previous_role=previous, role=Role.ADMIN, assigned_by=None
                ),
            )
            self._invalidate_user_after_commit(user.id)
        return user

    def _audit(
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

    async def audit_log(
        self,
        actor: Principal,
        *,
        subject_id: uuid.UUID | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[AuditEntry], str | None]:
        await self.require_role(actor, Role.ADMIN)
        entries = await self.repository.audit_entries(
            subject_id=subject_id, after=decode_time_cursor(cursor), limit=limit + 1
        )
        next_cursor = None
        if len(entries) > limit:
            entries = entries[:limit]
            next_cursor = encode_cursor(entries[-1].at.isoformat(), entries[-1].id)
        return entries, next_cursor

    def _invalidate_user_after_commit(self, user_id: uuid.UUID) -> None:
        async def invalidate() -> None:
            self.profiles.drop(user_id)
            await self.decisions.invalidate_user(user_id)

        self.session.after_commit(invalidate)

    # --- entitlements ----------------------------------------------------------------

    async def grant(self, actor: Principal, grant: EntitlementGrant) -> Entitlement:
        result, existing = await self._grant_many(
            actor,
            user_ids=[grant.user_id],
            book_id=grant.book_id,
            source=grant.source,
            expires_at=grant.expires_at,
        )
        if existing:
            raise Conflict(
                "This user already has an active entitlement to this book.",
                code="already-entitled",
            )
        return result[0]

    async def grant_bulk(
        self, actor: Principal, grant: BulkEntitlementGrant
    ) -> tuple[list[Entitlement], list[uuid.UUID]]:
        return await self._grant_many(
            actor,
            user_ids=list(dict.fromkeys(grant.user_ids)),
            book_id=grant.book_id,
            source=grant.source,
            expires_at=grant.expires_at,
        )

    async def _grant_many(
        self,
        actor: Principal,
        *,
        user_ids: list[uuid.UUID],
        book_id: uuid.UUID,
        source: EntitlementSource,
        expires_at: datetime | None,
    ) -> tuple[list[Entitlement], list[uuid.UUID]]:
        granter = await self.require_role(actor, Role.TEACHER)
        unrestricted = Role(granter.role).at_least(GRANT_ANYTHING)
        if expires_at is not None and expires_at <= now_utc():
            raise Unprocessable("expires_at must be in the future.")
        if not unrestricted:
            if source is not EntitlementSource.TEACHER_ASSIGNMENT:
                raise Forbidden("Teachers grant as teacher_assignment only.")
            await self._require_published(book_id)
        users = await self.repository.users(user_ids)
        unknown = [str(u) for u in user_ids if u not in users]
        if unknown:
            raise NotFound("Some users do not exist.", unknown_user_ids=unknown)
        if not unrestricted:
            not_learners = [str(u.id) for u in users.values() if u.role != Role.LEARNER.value]
            if not_learners:
                raise Forbidden(
                    "Teachers may grant books to LEARNER accounts only.",
                    not_learner_ids=not_learners,
                )
        existing = await self.repository.active_entitlements(user_ids, book_id)
        granted = []
        now = now_utc()
        for user_id in user_ids:
            if user_id in existing:
                continue
            entitlement = Entitlement(
                id=uuid.uuid4(),
                user_id=user_id,
                book_id=book_id,
                source=source.value,
                granted_by=granter.id,
                granted_at=now,
                expires_at=expires_at,
            )
            self.repository.add(entitlement)
            granted.append(entitlement)
            self._audit(
                granter.id,
                "entitlement.granted",
                "entitlement",
                entitlement.id,
                None,
                {
                    "user_id": user_id,
                    "book_id": book_id,
                    "source": source,
                    "expires_at": expires_at,
                },
            )
            record_event(
                self.session,
                EntitlementGranted(
                    entitlement_id=entitlement.id,
                    user_id=user_id,
                    book_id=book_id,
                    source=source.value,
                    granted_by=granter.id,
                    expires_at=expires_at,
                ),
            )
            self._invalidate_user_after_commit(user_id)
        return granted, [u for u in user_ids if u in existing]

    async def _require_published(self, book_id: uuid.UUID) -> CatalogBook:
        book = await self.repository.book(book_id)
        if book is None or not book.published:
            raise NotFound("No published book has this id.", code="book-not-published")
        return book

    async def revoke(self, actor: Principal, entitlement_id: uuid.UUID) -> Entitlement:
        revoker = await self.require_role(actor, Role.TEACHER)
        entitlement = await self.repository.entitlement(entitlement_id)
        if entitlement is None:
            raise NotFound("No such entitlement.")
        if not Role(revoker.role).at_least(GRANT_ANYTHING):
            # A teacher takes back only what they gave: never another teacher's
            # assignment, never a purchase (only CONTENT_ADMIN and up revoke those).
            if (
                entitlement.granted_by != revoker.id
                or entitlement.source != EntitlementSource.TEACHER_ASSIGNMENT.value
            ):
                raise Forbidden(
                    "You may revoke only the entitlements you granted.", code="not-your-grant"
                )
            holder = await self.repository.user(entitlement.user_id)
            if holder is None or holder.role != Role.LEARNER.value:
                raise Forbidden("Teachers may revoke LEARNER entitlements only.")
            await self._require_published(entitlement.book_id)
        if entitlement.revoked_at is not None:
            raise Conflict("This entitlement is already revoked.", code="already-revoked")
        entitlement.revoked_at = now_utc()
        entitlement.revoked_by = revoker.id
        self._audit(
            revoker.id,
            "entitlement.revoked",
            "entitlement",
            entitlement.id,
            {"revoked_at": None},
            {"revoked_at": entitlement.revoked_at},
        )
        record_event(
            self.session,
            EntitlementRevoked(
                entitlement_id=entitlement.id,
                user_id=entitlement.user_id,
                book_id=entitlement.book_id,
                revoked_by=revoker.id,
            ),
        )
        self._invalidate_user_after_commit(entitlement.user_id)
        return entitlement

    async def list_entitlements(
        self,
        actor: Principal,
        *,
        user_id: uuid.UUID | None,
        book_id: uuid.UUID | None,
        include_revoked: bool,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Entitlement], str | None]:
        viewer = await self.current_user(actor)
        role = Role(viewer.role)
        granted_by = None
        if not role.at_least(Role.TEACHER):
            # Learners see their own entitlements and nobody else's.
            if user_id not in (None, viewer.id):
                raise Forbidden("You can only list your own entitlements.")
            user_id = viewer.id
        elif not role.at_least(GRANT_ANYTHING) and user_id != viewer.id:
            granted_by = viewer.id  # teachers see what they granted
        rows = await self.repository.list_entitlements(
            user_id=user_id,
            book_id=book_id,
            granted_by=granted_by,
            include_revoked=include_revoked,
            after=decode_time_cursor(cursor),
            limit=limit + 1,
        )
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].granted_at.isoformat(), rows[-1].id)
        return rows, next_cursor

    # --- decisions -------------------------------------------------------------------

    async def decide(self, request: DecisionRequest) -> Decision:
        return await self.decisions.get_or_decide(request, lambda: self._decide_now(request))

    async def _decide_now(self, request: DecisionRequest) -> Decision:
        user = await self.repository.user(request.user_id)
        if user is None:
            return Decision(allow=False, reason="unknown user")
        role = Role(user.role)
        if request.action is not Action.BOOK_READ:
            minimum = ACTION_MINIMUM_ROLE[request.action]
            if role.at_least(minimum):
                return Decision(allow=True, reason=f"role {role.value}")
            return Decision(allow=False, reason=f"needs {minimum.value} or higher")
        if request.resource_id is None:
            raise Unprocessable("book:read needs the book's id as resource_id.")
        row = await self.repository.book(request.resource_id)
        book = BookFacts(published=row.published, access=row.access) if row else None
        entitled = needs_entitlement(role, book) and await self.repository.has_live_entitlement(
            user.id, request.resource_id, now_utc()
        )
        return decide_book_read(role, book, entitled=entitled)

    async def readable_books(
        self, principal: Principal, limit: int
    ) -> list[tuple[CatalogBook, str]]:
        user = await self.current_user(principal)
        return await self.repository.readable_books(
            user.id,
            now_utc(),
            every_published=Role(user.role).at_least(READ_ANY_PUBLISHED),
            limit=limit,
        )


def _jsonable(values: dict[str, object] | None) -> dict[str, object] | None:
    if values is None:
        return None
    return {
        k: (v.isoformat() if isinstance(v, datetime) else str(v) if v is not None else None)
        for k, v in values.items()
    }
