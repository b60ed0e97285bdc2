"""Users and their roles, as an ADMIN manages them: the list, role changes (never
the last ADMIN), the languages a story manager reviews, the first ADMIN, and the
audit log. Every change takes effect at once: the caches that hold the user's
decisions are emptied after the commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.access.accounts import AccountService
from services.access.emails import normalize_email
from services.access.models import AuditEntry, User
from shared.bus.outbox import record_event
from shared.contracts.clock import now_utc
from shared.contracts.errors import Conflict, Forbidden, NotFound
from shared.contracts.events import RoleAssigned
from shared.contracts.roles import Role
from shared.http.auth import Principal
from shared.http.pagination import decode_time_cursor, time_page


@dataclass
class UserAdministration:
    accounts: AccountService

    async def list_users(
        self, actor: Principal, *, role: Role | None, cursor: str | None, limit: int
    ) -> tuple[list[User], str | None]:
        await self.accounts.require_role(actor, Role.ADMIN)
        after = decode_time_cursor(cursor)
        users = await self.accounts.repository.list_users(role=role, after=after, limit=limit + 1)
        return time_page(users, limit, lambda user: user.created_at)

    async def assign_role(self, actor: Principal, user_id: uuid.UUID, role: Role) -> User:
        admin = await self.accounts.require_role(actor, Role.ADMIN)
        admins = await self.accounts.repository.lock_admins()
        user = await self.accounts.repository.user(user_id, for_update=True)
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
        self.accounts.audit(
            admin.id, "role.assigned", "user", user.id, {"role": previous}, {"role": role}
        )
        record_event(
            self.accounts.session,
            RoleAssigned(user_id=user.id, previous_role=previous, role=role, assigned_by=admin.id),
        )
        self.accounts.invalidate_user_after_commit(user.id)
        return user

    async def set_review_languages(
        self, actor: Principal, user_id: uuid.UUID | None, languages: list[str]
    ) -> User:
        """The languages a story manager reviews: their own (`user_id` None), or
        anyone's for an ADMIN.

        What an ADMIN sets for someone else is also a ceiling: that reviewer may
        narrow their own list within it, never widen it (an empty list, every
        language, included). Takes effect at once: the review decision that carries
        them is emptied from every cache, as on a role change.
        """
        if actor.kind != "user":
            raise Forbidden("Review languages are set by people, not services.")
        by_admin = user_id is not None and user_id != actor.user_id
        if user_id is not None and by_admin:
            changer = await self.accounts.require_role(actor, Role.ADMIN)
        else:
            changer = await self.accounts.require_role(actor, Role.STORY_MANAGER)
            user_id = changer.id
        user = await self.accounts.repository.user(user_id, for_update=True)
        if user is None:
            raise NotFound("No such user.")
        if not Role(user.role).at_least(Role.STORY_MANAGER):
            raise Conflict(
                "Only story managers and above review submissions.", code="not-a-reviewer"
            )
        chosen = list(dict.fromkeys(tag.lower() for tag in languages))
        ceiling = user.review_languages_ceiling
        if by_admin:
            ceiling = chosen or None
        elif ceiling is not None and (not chosen or not set(chosen) <= set(ceiling)):
            raise Forbidden(
                f"An ADMIN set the languages you review: {', '.join(ceiling)}. You may "
                "choose among them, not add to them.",
                code="review-languages-restricted",
                allowed=ceiling,
            )
        if chosen == list(user.review_languages) and ceiling == user.review_languages_ceiling:
            return user
        self.accounts.audit(
            changer.id,
            "review_languages.set",
            "user",
            user.id,
            {
                "review_languages": list(user.review_languages),
                "ceiling": user.review_languages_ceiling,
            },
            {"review_languages": chosen, "ceiling": ceiling},
        )
        user.review_languages = chosen
        user.review_languages_ceiling = ceiling
        user.updated_at = now_utc()
        self.accounts.invalidate_user_after_commit(user.id)
        return user

    async def create_admin(self, *, email: str, password: str, display_name: str) -> User:
        """The first ADMIN (CLI or settings): creates the account, or promotes an existing one."""
        email = normalize_email(email)
        user = await self.accounts.repository.user_by_email(email)
        if user is None:
            user = await self.accounts.register(
                email=email, password=password, display_name=display_name, client_ip=None
            )
            await self.accounts.repository.flush()
        if user.role != Role.ADMIN.value:
            previous = Role(user.role)
            user.role = Role.ADMIN.value
            user.updated_at = now_utc()
            self.accounts.audit(
                None, "role.assigned", "user", user.id, {"role": previous}, {"role": "ADMIN"}
            )
            record_event(
                self.accounts.session,
                RoleAssigned(
                    user_id=user.id, previous_role=previous, role=Role.ADMIN, assigned_by=None
                ),
            )
            self.accounts.invalidate_user_after_commit(user.id)
        return user

    async def audit_log(
        self,
        actor: Principal,
        *,
        subject_id: uuid.UUID | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[AuditEntry], str | None]:
        await self.accounts.require_role(actor, Role.ADMIN)
        entries = await self.accounts.repository.audit_entries(
            subject_id=subject_id, after=decode_time_cursor(cursor), limit=limit + 1
        )
        return time_page(entries, limit, lambda entry: entry.at)
