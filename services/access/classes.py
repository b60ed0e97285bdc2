"""Classes (#19): a teacher's classes, their learners and assigned books, a learner
joining with a code. Join codes are join_codes.py; the accounts of children
without email, class_accounts.py.

A teacher sees and changes only their own classes (another teacher's is a 404,
as if it did not exist); an ADMIN, every class. Learners never see a class's
members. No web framework here and no commit: the caller's unit of work commits.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.access.accounts import AccountService
from services.access.class_accounts import (
    ClassAccounts,
    NewLearner,
    account_key,
    first_password,
    username_for,
)
from services.access.entitlements import CLASS_ASSIGNMENT, EntitlementService
from services.access.join_codes import JoinCodes
from services.access.models import ClassAssignment, ClassMember, Entitlement, SchoolClass, User
from services.access.repository import AccessRepository
from shared.bus.outbox import record_event
from shared.contracts.clock import now_utc
from shared.contracts.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unprocessable,
)
from shared.contracts.events import (
    ClassBookAssigned,
    ClassBookUnassigned,
    ClassMemberJoined,
    ClassMemberLeft,
)
from shared.contracts.roles import Role
from shared.http.auth import Principal
from shared.http.pagination import decode_time_cursor, time_page


@dataclass
class ClassService:
    """Classes and class accounts, on top of the accounts (roles, hashing, tokens)."""

    accounts: AccountService

    @property
    def repository(self) -> AccessRepository:
        return self.accounts.repository

    @property
    def join_codes(self) -> JoinCodes:
        return JoinCodes(self.accounts)

    @property
    def class_accounts(self) -> ClassAccounts:
        return ClassAccounts(self.accounts)

    @property
    def entitlements(self) -> EntitlementService:
        return EntitlementService(self.accounts)

    # --- the teacher's side ---------------------------------------------------------

    async def create(self, actor: Principal, *, name: str, grade: str | None) -> SchoolClass:
        teacher = await self.accounts.require_role(actor, Role.TEACHER)
        now = now_utc()
        school_class = SchoolClass(
            id=uuid.uuid4(),
            teacher_id=teacher.id,
            name=name,
            grade=grade,
            join_code=await self.join_codes.unused(),
            join_code_expires_at=now + timedelta(days=self.accounts.settings.join_code_days),
            archived_at=None,
            created_at=now,
            updated_at=now,
        )
        self.repository.add(school_class)
        self.accounts.audit(
            teacher.id, "class.created", "class", school_class.id, None, {"name": name}
        )
        return school_class

    async def list_classes(
        self, actor: Principal, *, archived: bool, cursor: str | None, limit: int
    ) -> tuple[list[SchoolClass], dict[uuid.UUID, int], str | None]:
        """The caller's own classes (every class for an ADMIN), oldest first."""
        user = await self.accounts.require_role(actor, Role.TEACHER)
        everyone = Role(user.role).at_least(Role.ADMIN)
        found = await self.repository.classes(
            teacher_id=None if everyone else user.id,
            archived=archived,
            after=decode_time_cursor(cursor),
            limit=limit + 1,
        )
        found, next_cursor = time_page(found, limit, lambda school_class: school_class.created_at)
        counts = await self.repository.member_counts([c.id for c in found])
        return found, counts, next_cursor

    async def get(self, actor: Principal, class_id: uuid.UUID) -> tuple[SchoolClass, int]:
        school_class = await self._own_class(actor, class_id)
        return school_class, await self.learner_count(class_id)

    async def learner_count(self, class_id: uuid.UUID) -> int:
        return (await self.repository.member_counts([class_id])).get(class_id, 0)

    async def rotate_code(
        self, actor: Principal, class_id: uuid.UUID, *, expires_in_days: int | None
    ) -> SchoolClass:
        """A new code: the old one neither joins nor signs in any more."""
        school_class = await self._own_class(actor, class_id, for_update=True, open_only=True)
        days = expires_in_days or self.accounts.settings.join_code_days
        now = now_utc()
        school_class.join_code = await self.join_codes.unused()
        school_class.join_code_expires_at = now + timedelta(days=days)
        school_class.updated_at = now
        return school_class

    async def archive(self, actor: Principal, class_id: uuid.UUID) -> SchoolClass:
        """The end of a school year: nobody joins any more; learners keep their accounts."""
        school_class = await self._own_class(actor, class_id, for_update=True)
        if school_class.archived_at is None:
            school_class.archived_at = school_class.updated_at = now_utc()
            self.accounts.audit(actor.user_id, "class.archived", "class", class_id, None, None)
        return school_class

    async def add_learners(
        self, actor: Principal, class_id: uuid.UUID, names: list[str]
    ) -> tuple[SchoolClass, list[NewLearner]]:
        """Class accounts for these display names: usernames and first passwords out
        (shown once: only their hashes are kept)."""
        await self._own_class(actor, class_id, open_only=True)
        passwords = [first_password() for _ in names]
        # Hashed with no connection held (argon2: tens of ms each, in threads), then
        # the class locked, so two lists added at once never pick one username twice.
        await self.accounts.session.rollback()
        hashes = await asyncio.gather(*(self.accounts.hashing.hash(p) for p in passwords))
        school_class = await self._own_class(actor, class_id, for_update=True, open_only=True)
        taken = await self.repository.usernames(class_id)
        now = now_utc()
        created = [
            NewLearner(
                self.class_accounts.new(school_class, name, username_for(name, taken), hash_, now),
                password,
            )
            for name, password, hash_ in zip(names, passwords, hashes, strict=True)
        ]
        await self._enrol(school_class, [n.user for n in created], now)
        return school_class, created

    async def members(self, actor: Principal, class_id: uuid.UUID) -> list[tuple[User, datetime]]:
        await self._own_class(actor, class_id)
        return await self.repository.members(class_id)

    async def remove_member(
        self, actor: Principal, class_id: uuid.UUID, user_id: uuid.UUID
    ) -> None:
        await self._own_class(actor, class_id)
        if not await self.repository.remove_member(class_id, user_id):
            raise NotFound("This learner is not in this class.")
        self.accounts.audit(
            actor.user_id, "class.member_removed", "class", class_id, {"user_id": user_id}, None
        )
        record_event(self.accounts.session, ClassMemberLeft(class_id=class_id, user_id=user_id))
        given = await self.repository.entitlements_from(class_id=class_id, user_id=user_id)
        await self._take_back(given, actor.user_id)

    async def reset_password(
        self, actor: Principal, class_id: uuid.UUID, user_id: uuid.UUID
    ) -> tuple[User, str]:
        """A new first password for a class account of this class; every session the
        learner had ends (whoever knew the old password is signed out)."""
        school_class = await self._own_class(actor, class_id)
        password = first_password()
        password_hash = await self.accounts.hashing.hash(password)
        user = await self.repository.user(user_id, for_update=True)
        if user is None or user.home_class_id != class_id:
            raise NotFound("No class account of this class has this id.")
        user.password_hash = password_hash
        user.updated_at = now_utc()
        # The teacher has vouched for the child: the account's failures start over.
        await self.accounts.limiter.reset(account_key(school_class.join_code, user.username))
        for session_id in await self.repository.live_sessions(user.id, user.updated_at):
            await self.accounts.end_session(session_id)
        self.accounts.audit(actor.user_id, "class.password_reset", "user", user.id, None, None)
        return user, password

    # --- assignments ----------------------------------------------------------------

    async def assign(
        self, actor: Principal, class_id: uuid.UUID, book_id: uuid.UUID, due_at: datetime | None
    ) -> tuple[ClassAssignment, int]:
        """Give a published book to every learner of the class, and to those who join
        later; how many got a new entitlement (one who already had the book, bought
        or given, keeps what they had)."""
        school_class = await self._own_class(actor, class_id, for_update=True, open_only=True)
        await self.entitlements.require_published(book_id)
        if due_at is not None and due_at <= now_utc():
            raise Unprocessable("due_at must be in the future.")
        if await self.repository.live_assignment(class_id, book_id) is not None:
            raise Conflict("This book is already assigned to this class.", code="already-assigned")
        assignment = ClassAssignment(
            id=uuid.uuid4(),
            class_id=school_class.id,
            book_id=book_id,
            due_at=due_at,
            assigned_by=actor.user_id,
            assigned_at=now_utc(),
            removed_at=None,
        )
        self.repository.add(assignment)
        record_event(
            self.accounts.session,
            ClassBookAssigned(
                assignment_id=assignment.id,
                class_id=class_id,
                teacher_id=school_class.teacher_id,
                book_id=book_id,
                due_at=due_at,
            ),
        )
        self.accounts.audit(
            actor.user_id, "class.book_assigned", "class", class_id, None,
            {"book_id": book_id, "due_at": due_at},
        )  # fmt: skip
        members = [user for user, _ in await self.repository.members(class_id)]
        return assignment, await self._give(assignment, members)

    async def report_basis(
        self, actor: Principal, class_id: uuid.UUID
    ) -> tuple[SchoolClass, list[User], list[ClassAssignment], dict[uuid.UUID, str | None]]:
        """What the class report names: the class, its learners, its live assignments
        and their books' titles (the report's figures come from metrics)."""
        school_class = await self._own_class(actor, class_id)
        members = [user for user, _ in await self.repository.members(class_id)]
        assignments = await self.repository.live_assignments(class_id)
        titles = await self.repository.book_titles([a.book_id for a in assignments])
        return school_class, members, assignments, titles

    async def assignments(self, actor: Principal, class_id: uuid.UUID) -> list[ClassAssignment]:
        await self._own_class(actor, class_id)
        return await self.repository.live_assignments(class_id)

    async def unassign(
        self, actor: Principal, class_id: uuid.UUID, assignment_id: uuid.UUID
    ) -> None:
        """Take the book back from the class: exactly what this assignment gave ends
        (a learner who also has it from another class keeps it through that one)."""
        await self._own_class(actor, class_id, for_update=True)
        assignment = await self.repository.assignment(assignment_id, for_update=True)
        if assignment is None or assignment.class_id != class_id or assignment.removed_at:
            raise NotFound("This class has no such assignment.")
        assignment.removed_at = now_utc()
        record_event(
            self.accounts.session,
            ClassBookUnassigned(
                assignment_id=assignment.id, class_id=class_id, book_id=assignment.book_id
            ),
        )
        self.accounts.audit(
            actor.user_id, "class.book_unassigned", "class", class_id,
            {"book_id": assignment.book_id}, None,
        )  # fmt: skip
        await self.repository.flush()  # the removed assignment covers no one below
        given = await self.repository.entitlements_from(assignment_id=assignment_id)
        await self._take_back(given, actor.user_id)

    async def _give(self, assignment: ClassAssignment, users: list[User]) -> int:
        """Entitlements from `assignment` for the learners among `users` who have none
        that is live (an expired one is ended first, so the assignment counts)."""
        learners = [u.id for u in users if u.role == Role.LEARNER.value]
        existing = await self.repository.active_entitlements(learners, assignment.book_id)
        now, given = now_utc(), 0
        for user_id in learners:
            held = existing.get(user_id)
            if held is not None and (held.expires_at is None or held.expires_at > now):
                continue
            if held is not None:
                self.entitlements.end(held, assignment.assigned_by, now)
                await self.repository.flush()  # before the new row takes its place
            self.entitlements.issue(
                user_id, assignment.book_id, CLASS_ASSIGNMENT, assignment.assigned_by, now,
                expires_at=None, assignment_id=assignment.id,
            )  # fmt: skip
            given += 1
        return given

    async def _take_back(self, given: list[Entitlement], by: uuid.UUID) -> None:
        """End entitlements an assignment gave; a learner still covered by another
        class's live assignment of the same book gets it again from that one."""
        now = now_utc()
        for entitlement in given:
            self.entitlements.end(entitlement, by, now)
        await self.repository.flush()
        for entitlement in given:
            cover = await self.repository.covering_assignment(
                entitlement.user_id, entitlement.book_id
            )
            if cover is not None:
                self.entitlements.issue(
                    entitlement.user_id, entitlement.book_id, CLASS_ASSIGNMENT,
                    cover.assigned_by, now, assignment_id=cover.id,
                )  # fmt: skip

    async def _give_class_books(self, school_class: SchoolClass, users: list[User]) -> None:
        """Learners joining get what the class was already given."""
        for assignment in await self.repository.live_assignments(school_class.id):
            await self._give(assignment, users)

    # --- the learner's side ---------------------------------------------------------

    async def join(self, actor: Principal, code: str, client_ip: str | None) -> SchoolClass:
        """A signed-in learner joins with the code; joining twice changes nothing."""
        user = await self.accounts.current_user(actor)
        if user.role != Role.LEARNER.value:
            raise Forbidden("Only LEARNER accounts join classes.")
        async with self.join_codes.gates(client_ip, account=str(user.id)):
            school_class = await self.join_codes.joinable(code)
        if await self.repository.member(school_class.id, user.id) is None:
            await self._enrol(school_class, [user], now_utc())
        return school_class

    async def register(
        self, *, code: str, display_name: str, password: str, client_ip: str | None
    ) -> tuple[User, str, SchoolClass]:
        """A child without email makes their own class account with the code: the
        account, its username and its class."""
        self.class_accounts.check_password(password)
        await self.accounts.limits.hold_registration(client_ip)
        password_hash = await self.accounts.hashing.hash(password)  # before any lock
        async with self.join_codes.gates(client_ip):
            school_class = await self.join_codes.joinable(code)
        taken = await self.repository.usernames(school_class.id)
        username = username_for(display_name, taken, self_registered=True)
        now = now_utc()
        user = self.class_accounts.new(school_class, display_name, username, password_hash, now)
        await self._enrol(school_class, [user], now)
        return user, username, school_class

    # --- shared ---------------------------------------------------------------------

    async def _enrol(self, school_class: SchoolClass, users: list[User], now: datetime) -> None:
        # The accounts are written first: no relationship() tells SQLAlchemy that a
        # membership row refers to them, so it would not order the inserts itself.
        await self.repository.flush()
        for user in users:
            self.repository.add(
                ClassMember(class_id=school_class.id, user_id=user.id, joined_at=now)
            )
            record_event(
                self.accounts.session,
                ClassMemberJoined(
                    class_id=school_class.id, teacher_id=school_class.teacher_id, user_id=user.id
                ),
            )
        await self._give_class_books(school_class, users)

    async def _own_class(
        self,
        actor: Principal,
        class_id: uuid.UUID,
        *,
        for_update: bool = False,
        open_only: bool = False,
    ) -> SchoolClass:
        """The class, if the caller teaches it (or is an ADMIN); another teacher's
        class is a 404, as one that does not exist."""
        user = await self.accounts.require_role(actor, Role.TEACHER)
        school_class = await self.repository.school_class(class_id, for_update=for_update)
        if school_class is None or (
            school_class.teacher_id != user.id and not Role(user.role).at_least(Role.ADMIN)
        ):
            raise NotFound("No class of yours has this id.")
        if open_only and school_class.archived_at is not None:
            raise Conflict("This class is archived.", code="class-archived")
        return school_class
