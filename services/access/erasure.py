"""Erasing an account, whoever asks (#19, #41): a teacher a class account of theirs,
an ADMIN any learner or volunteer, a learner or volunteer themselves, a parent
through the consent links (consent.py). What erasing does is the same for all:
`AccountService.erase`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.access.accounts import AccountService
from shared.contracts.errors import Conflict, NotFound
from shared.contracts.roles import Role
from shared.http.auth import Principal


@dataclass
class Erasure:
    accounts: AccountService

    async def erase_account(self, actor: Principal, user_id: uuid.UUID) -> None:
        """Erase an account: its teacher may erase a class account of their class, an
        ADMIN any learner or volunteer account. The row goes (its name, username, email,
        refresh tokens, memberships and entitlements with it), every session ends at
        once, and `user.erased` tells the other services to drop what they hold;
        the audit log keeps only ids."""
        eraser = await self.accounts.require_role(actor, Role.TEACHER)
        user = await self.accounts.repository.user(user_id, for_update=True)
        if user is None:
            raise NotFound("No such account.")
        if not Role(eraser.role).at_least(Role.ADMIN):
            home = (
                await self.accounts.repository.school_class(user.home_class_id)
                if user.home_class_id is not None
                else None
            )
            if home is None or home.teacher_id != eraser.id:
                raise NotFound("No class account of your classes has this id.")
        # An ADMIN erases learners and volunteers; other staff are demoted first
        # (an ADMIN's decision, in the audit log), so no one erases a manager by accident.
        erasable = (
            (Role.LEARNER, Role.VOLUNTEER) if Role(eraser.role) is Role.ADMIN else (Role.LEARNER,)
        )
        if Role(user.role) not in erasable:
            raise Conflict(
                "Only learner and volunteer accounts are erased; an ADMIN changes a staff "
                "account's role first.",
                code="not-a-learner",
            )
        await self.accounts.erase(user, eraser.id, "asked by staff")

    async def erase_self(self, actor: Principal) -> None:
        """A learner or volunteer erases their own account (#41, GDPR art. 17); staff
        ask an ADMIN, who demotes and erases them."""
        user = await self.accounts.current_user(actor)
        user = await self.accounts.repository.user(user.id, for_update=True) or user
        if Role(user.role) not in (Role.LEARNER, Role.VOLUNTEER):
            raise Conflict(
                "A staff account is erased by an ADMIN: ask one to change its role and erase it.",
                code="staff-erased-by-admin",
            )
        await self.accounts.erase(user, user.id, "asked by the account holder")
