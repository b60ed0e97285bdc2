"""Parents' consent for children under 13 who sign up themselves (#41, COPPA's
"email plus" method; README "Privacy").

- Sign-up asks everyone the year they were born, and nothing else about age. A
  child who could still be 12 (born 13 or fewer years before this year) gives a
  parent's address and gets a *pending* account: it cannot sign in until the
  parent agrees.
- The parent gets a mail with a signed link that expires after
  `ACCESS_CONSENT_DAYS`. Opening it shows what they are asked (a GET changes
  nothing: mail scanners open links); agreeing activates the account and a second
  mail confirms it, with a link to withdraw; declining erases the account.
- Unanswered in time, the account and everything it held are erased by the worker
  (`expire_unanswered`). Withdrawing later erases it as an erasure does.
- Class accounts stand under their school's consent: their teacher made them.

A link names its consent, what it does and until when, signed with a key derived
from the key-encryption key: it cannot be stretched, pointed at another child, or
turned from "see" into "withdraw". A forged one learns nothing (404).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

import structlog
from sqlalchemy import select

from services.access.accounts import AccountService
from services.access.components import account_service, build_components
from services.access.emails import normalize_email
from services.access.mail_outbox import queue_mail
from services.access.models import ParentalConsent, User
from services.access.settings import AccessSettings
from shared.clients.db import unit_of_work
from shared.contracts.clock import now_utc
from shared.contracts.errors import Conflict, NotFound, Problem, TooManyRequests, Unprocessable
from shared.resources import Resources
from shared.service.periodic import every
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

CONSENT_AGE = 13
OLDEST_AGE = 120
PARENT_WINDOW_SECONDS = 24 * 3600


class Consent(StrEnum):
    """On what ground an account's data is held (users.consent)."""

    NOT_ASKED = "not-asked"  # made before the age question (#41), or by an ADMIN
    NOT_NEEDED = "not-needed"  # 13 or over by their own answer
    PENDING = "pending"  # under 13, waiting for a parent
    PARENT = "parent"  # a parent agreed
    SCHOOL = "school"  # a class account: its teacher's school consented


Purpose = Literal["give", "withdraw"]


class Gone(Problem):
    status, code, title = 410, "gone", "Gone"


def needs_parent(birth_year: int, today: datetime) -> bool:
    """Could this person still be under 13? With a year only, one born 13 years
    ago may not have had the birthday yet: they are asked for a parent too."""
    if not today.year - OLDEST_AGE <= birth_year <= today.year:
        raise Unprocessable(
            f"birth_year must be a year between {today.year - OLDEST_AGE} and {today.year}.",
            code="invalid-birth-year",
        )
    return today.year - birth_year - 1 < CONSENT_AGE


@dataclass(frozen=True)
class ConsentLinks:
    """Signed tokens for the links in parents' mail: `<consent id>.<purpose>.<expiry>.<mac>`."""

    key: bytes

    @classmethod
    def from_settings(cls, settings: AccessSettings) -> ConsentLinks:
        kek = settings.key_encryption_key.get_secret_value().encode()
        return cls(hmac.new(kek, b"parental-consent-links/1", hashlib.sha256).digest())

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self.key, payload.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def token(self, consent_id: uuid.UUID, purpose: Purpose, expires: datetime | None) -> str:
        # A withdrawal link holds while the consent does: 0 for "no end".
        payload = f"{consent_id.hex}.{purpose}.{int(expires.timestamp()) if expires else 0}"
        return f"{payload}.{self._mac(payload)}"

    def read(self, token: str) -> tuple[uuid.UUID, Purpose, datetime | None]:
        """What a genuine token says; a forged or mangled one is a 404 like any
        unknown address (it learns nothing)."""
        payload, _, mac = token.rpartition(".")
        consent_hex, purpose, expires = [*payload.split("."), "", "", ""][:3]
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            raise NotFound("There is nothing at this address.")
        seconds = int(expires)
        return (
            uuid.UUID(consent_hex),
            "give" if purpose == "give" else "withdraw",
            datetime.fromtimestamp(seconds, tz=now_utc().tzinfo) if seconds else None,
        )


@dataclass
class ConsentService:
    accounts: AccountService

    @property
    def settings(self) -> AccessSettings:
        return self.accounts.settings

    @property
    def links(self) -> ConsentLinks:
        return ConsentLinks.from_settings(self.settings)

    def url(self, token: str) -> str:
        return f"{self.settings.public_url.rstrip('/')}/v1/auth/consents/{token}"

    async def register(
        self,
        *,
        email: str,
        password: str,
        display_name: str,
        birth_year: int,
        parent_email: str | None,
        client_ip: str | None,
    ) -> User:
        """Self-registration with the age question: 13 or over, an account at once
        (a parent's address, if given, is not kept); under 13, a pending account and
        the mail to the parent."""
        now = now_utc()
        if not needs_parent(birth_year, now):
            return await self.accounts.register(
                email=email,
                password=password,
                display_name=display_name,
                client_ip=client_ip,
                consent=Consent.NOT_NEEDED.value,
            )
        parent: list[str] = []

        async def checks(child_email: str) -> None:
            parent.append(await self.check_parent(parent_email, child_email))

        return await self.accounts.register(
            email=email,
            password=password,
            display_name=display_name,
            client_ip=client_ip,
            consent=Consent.PENDING.value,
            checks=checks,
            on_created=lambda child: self.ask(child, parent[0], now),
        )

    async def check_parent(self, parent_email: str | None, child_email: str) -> str:
        """The parent's address, canonical, for a child's sign-up; 422 without one
        (or with the child's own), 429 past the day's requests to that address."""
        if parent_email is None:
            raise Unprocessable(
                "Under 13, a parent or guardian must agree first: give their email address "
                "as parent_email, and they will get a mail with a link to agree.",
                code="parent-email-required",
            )
        parent = normalize_email(parent_email)
        if parent == child_email:
            raise Unprocessable(
                "parent_email must be a parent's or guardian's address, not the child's.",
                code="parent-email-is-the-childs",
            )
        # Keyed by a hash: the limiter's store never holds the address itself.
        key = "consent-parent:" + hashlib.sha256(parent.encode()).hexdigest()[:32]
        count = await self.accounts.limiter.hit(key, window_seconds=PARENT_WINDOW_SECONDS)
        if count.exceeded(self.settings.consent_requests_per_parent):
            raise TooManyRequests(
                "This address has been asked for consent often today; try again tomorrow.",
                code="too-many-consent-requests",
                retry_after=count.retry_after,
            )
        return parent

    def ask(self, child: User, parent_email: str, now: datetime) -> None:
        """The consent request and its mail, in the sign-up's transaction."""
        expires = now + timedelta(days=self.settings.consent_days)
        consent = ParentalConsent(
            id=uuid.uuid4(),
            user_id=child.id,
            parent_email=parent_email,
            requested_at=now,
            expires_at=expires,
        )
        self.accounts.repository.add(consent)
        link = self.url(self.links.token(consent.id, "give", expires))
        queue_mail(
            self.accounts.session,
            kind="consent-request",
            to=parent_email,
            subject="Your child would like to read on 1001 Stories",
            body=(
                f"Hello,\n\nsomeone signed up to 1001 Stories, a free library of children's "
                f'books, as "{child.display_name}" ({child.email}), said they are under 13, '
                f"and gave this address as their parent's or guardian's.\n\n"
                f"The account cannot be used until you agree. To read what we keep and "
                f"agree (or refuse), open:\n\n  {link}\n\n"
                f"The link works until {expires:%d %B %Y}. If you do nothing, the account "
                f"and everything in it is deleted then.\n\nIf you do not know this child, "
                f"ignore this mail: nothing more will be sent.\n"
            ),
        )

    async def _consent(
        self, token: str, *, for_update: bool = False
    ) -> tuple[ParentalConsent, User, Purpose]:
        consent_id, purpose, expires = self.links.read(token)
        stmt = select(ParentalConsent).where(ParentalConsent.id == consent_id)
        consent = await self.accounts.session.scalar(stmt.with_for_update() if for_update else stmt)
        if consent is None:
            raise Gone(
                "This child's account no longer exists: it was erased (the consent was "
                "refused, withdrawn or left unanswered).",
                code="consent-account-erased",
            )
        if purpose == "give":
            if consent.given_at is not None:
                raise Conflict(
                    f"You agreed on {consent.given_at:%d %B %Y}; the account is active. "
                    "The confirmation mail has the link to withdraw.",
                    code="consent-already-given",
                )
            # The expiry is in the signed token and in the row: both must hold.
            if expires is None or min(expires, consent.expires_at) <= now_utc():
                raise Gone(
                    "This link has expired; the account it was for is being erased.",
                    code="consent-link-expired",
                )
        elif consent.given_at is None:
            raise NotFound("There is nothing at this address.")
        user = await self.accounts.repository.user(consent.user_id, for_update=for_update)
        if user is None:
            raise Gone("This child's account no longer exists.", code="consent-account-erased")
        return consent, user, purpose

    async def view(self, token: str) -> dict[str, object]:
        consent, user, purpose = await self._consent(token)
        return {
            "purpose": purpose,
            "child": user.display_name,
            "child_email": user.email,
            "requested_at": consent.requested_at,
            "expires_at": consent.expires_at if purpose == "give" else None,
            "given_at": consent.given_at,
        }

    async def answer(self, token: str, agree: bool) -> Consent | None:
        """Agree (a give link only) or refuse/withdraw (either link): the account's
        consent after it, None once erased."""
        consent, user, purpose = await self._consent(token, for_update=True)
        if purpose == "give" and agree:
            now = now_utc()
            consent.given_at = user.updated_at = now
            user.consent = Consent.PARENT.value
            self.accounts.audit(None, "consent.given", "user", user.id, None, {"at": now})
            self.accounts.invalidate_user_after_commit(user.id)
            self._confirm(consent, user)
            return Consent.PARENT
        if agree:
            raise Conflict("This is the link to withdraw consent.", code="consent-already-given")
        reason = "consent refused" if purpose == "give" else "consent withdrawn"
        await self.accounts.erase(user, None, reason)
        log.info("account erased by its parent", user_id=str(user.id), reason=reason)
        return None

    def _confirm(self, consent: ParentalConsent, user: User) -> None:
        withdraw = self.url(self.links.token(consent.id, "withdraw", None))
        queue_mail(
            self.accounts.session,
            kind="consent-confirmation",
            to=consent.parent_email,
            subject="You agreed: your child can read on 1001 Stories",
            body=(
                f'Hello,\n\nthank you: "{user.display_name}" ({user.email}) can now sign in '
                f"and read.\n\nIf it was not you who agreed, or you change your mind, open "
                f"this link at any time to withdraw your consent; the account and "
                f"everything in it is then deleted:\n\n  {withdraw}\n\nKeep this mail for "
                f"that link.\n"
            ),
        )

    async def expire_unanswered(self, now: datetime, most: int = 100) -> int:
        """Erase up to `most` pending accounts whose consent was not given in time."""
        found = list(
            await self.accounts.session.scalars(
                select(ParentalConsent)
                .where(ParentalConsent.given_at.is_(None), ParentalConsent.expires_at <= now)
                .order_by(ParentalConsent.expires_at)
                .limit(most)
                .with_for_update(skip_locked=True)
            )
        )
        for consent in found:
            user = await self.accounts.repository.user(consent.user_id, for_update=True)
            if user is not None:
                await self.accounts.erase(user, None, "consent not given in time")
        return len(found)


async def expire_consents(
    resources: Resources, settings: ServiceSettings, stop: asyncio.Event
) -> None:
    """The worker's job: every `consent_expiry_check_seconds`, erase the pending
    accounts nobody agreed to in time, and say how many."""
    assert isinstance(settings, AccessSettings)
    async with AsyncExitStack() as stack:
        components = await build_components(settings, resources, stack)

        async def step() -> bool:
            async with unit_of_work(resources.session_factory) as session:
                accounts = account_service(components, resources, session)
                erased = await ConsentService(accounts).expire_unanswered(now_utc())
            if erased:
                log.info("pending accounts erased: no parent agreed in time", erased=erased)
            return erased > 0

        await every(
            settings.consent_expiry_check_seconds,
            stop,
            step,
            failure="unanswered consents not checked",
        )
