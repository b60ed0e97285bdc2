"""Entitlements: a teacher grants learners published books (bulk for a class), an
admin anything; revoking ends them at once in every service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from services.access.accounts import AccountService
from services.access.models import CatalogBook, Entitlement
from services.access.schemas import BulkEntitlementGrant, EntitlementGrant, EntitlementSource
from shared.bus.outbox import record_event
from shared.contracts.clock import now_utc
from shared.contracts.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.contracts.events import EntitlementGranted, EntitlementRevoked
from shared.contracts.roles import Role
from shared.http.auth import Principal
from shared.http.pagination import decode_time_cursor, time_page

# Below this, granting is the teacher's power: only to learners, only published books.
GRANT_ANYTHING = Role.CONTENT_ADMIN
# The source of entitlements a class assignment gives (#19): not one a client may
# grant or revoke by itself; the assignment and the class membership decide.
CLASS_ASSIGNMENT = "class_assignment"


@dataclass
class EntitlementService:
    """Granting and revoking books, on top of the accounts (roles, audit)."""

    accounts: AccountService

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
        granter = await self.accounts.require_role(actor, Role.TEACHER)
        unrestricted = Role(granter.role).at_least(GRANT_ANYTHING)
        if expires_at is not None and expires_at <= now_utc():
            raise Unprocessable("expires_at must be in the future.")
        if not unrestricted:
            if source is not EntitlementSource.TEACHER_ASSIGNMENT:
                raise Forbidden("Teachers grant as teacher_assignment only.")
            await self.require_published(book_id)
        users = await self.accounts.repository.users(user_ids)
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
        existing = await self.accounts.repository.active_entitlements(user_ids, book_id)
        granted = []
        now = now_utc()
        for user_id in user_ids:
            if user_id in existing:
                continue
            granted.append(
                self.issue(user_id, book_id, source.value, granter.id, now, expires_at=expires_at)
            )
        return granted, [u for u in user_ids if u in existing]

    def issue(
        self,
        user_id: uuid.UUID,
        book_id: uuid.UUID,
        source: str,
        granted_by: uuid.UUID,
        now: datetime,
        *,
        expires_at: datetime | None = None,
        assignment_id: uuid.UUID | None = None,
    ) -> Entitlement:
        """One entitlement written, audited and announced (the caller has checked
        who may grant it and that none is active)."""
        entitlement = Entitlement(
            id=uuid.uuid4(),
            user_id=user_id,
            book_id=book_id,
            source=source,
            granted_by=granted_by,
            granted_at=now,
            expires_at=expires_at,
            assignment_id=assignment_id,
        )
        self.accounts.repository.add(entitlement)
        self.accounts.audit(
            granted_by,
            "entitlement.granted",
            "entitlement",
            entitlement.id,
            None,
            {
                "user_id": user_id,
                "book_id": book_id,
                "source": source,
                "expires_at": expires_at,
                "assignment_id": assignment_id,
            },
        )
        record_event(
            self.accounts.session,
            EntitlementGranted(
                entitlement_id=entitlement.id,
                user_id=user_id,
                book_id=book_id,
                source=source,
                granted_by=granted_by,
                expires_at=expires_at,
            ),
        )
        self.accounts.invalidate_user_after_commit(user_id)
        return entitlement

    async def require_published(self, book_id: uuid.UUID) -> CatalogBook:
        book = await self.accounts.repository.book(book_id)
        if book is None or not book.published:
            raise NotFound("No published book has this id.", code="book-not-published")
        return book

    async def revoke(self, actor: Principal, entitlement_id: uuid.UUID) -> Entitlement:
        revoker = await self.accounts.require_role(actor, Role.TEACHER)
        entitlement = await self.accounts.repository.entitlement(entitlement_id)
        if entitlement is None:
            raise NotFound("No such entitlement.")
        if entitlement.source == CLASS_ASSIGNMENT and entitlement.revoked_at is None:
            raise Conflict(
                "This entitlement comes from a class assignment: remove the assignment, "
                "or the learner from the class.",
                code="from-class-assignment",
            )
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
            holder = await self.accounts.repository.user(entitlement.user_id)
            if holder is None or holder.role != Role.LEARNER.value:
                raise Forbidden("Teachers may revoke LEARNER entitlements only.")
            await self.require_published(entitlement.book_id)
        if entitlement.revoked_at is not None:
            raise Conflict("This entitlement is already revoked.", code="already-revoked")
        self.end(entitlement, revoker.id, now_utc())
        return entitlement

    def end(self, entitlement: Entitlement, revoked_by: uuid.UUID | None, now: datetime) -> None:
        """One active entitlement revoked, audited and announced."""
        entitlement.revoked_at = now
        entitlement.revoked_by = revoked_by
        self.accounts.audit(
            revoked_by,
            "entitlement.revoked",
            "entitlement",
            entitlement.id,
            {"revoked_at": None},
            {"revoked_at": entitlement.revoked_at},
        )
        record_event(
            self.accounts.session,
            EntitlementRevoked(
                entitlement_id=entitlement.id,
                user_id=entitlement.user_id,
                book_id=entitlement.book_id,
                revoked_by=revoked_by,
            ),
        )
        self.accounts.invalidate_user_after_commit(entitlement.user_id)

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
        viewer = await self.accounts.current_user(actor)
        role = Role(viewer.role)
        granted_by = None
        if not role.at_least(Role.TEACHER):
            # Learners see their own entitlements and nobody else's.
            if user_id not in (None, viewer.id):
                raise Forbidden("You can only list your own entitlements.")
            user_id = viewer.id
        elif not role.at_least(GRANT_ANYTHING) and user_id != viewer.id:
            granted_by = viewer.id  # teachers see what they granted
        rows = await self.accounts.repository.list_entitlements(
            user_id=user_id,
            book_id=book_id,
            granted_by=granted_by,
            include_revoked=include_revoked,
            after=decode_time_cursor(cursor),
            limit=limit + 1,
        )
        return time_page(rows, limit, lambda row: row.granted_at)
