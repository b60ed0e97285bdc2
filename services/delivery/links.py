"""Links to books: who gets a signed link to which PDF (or signed cookies).

The link path (`issue`) is the platform's hottest: everything it needs is in
process (the verified token, the published object, the reader's role and
entitlements), it makes no Redis round trip (rate limits are counted in process
and shared in the background), and its one write, the `delivery.issued` event,
joins a group commit instead of paying for its own.

It asks no other service. The decision is the platform's one rule
(`shared.contracts.decisions.decide_book_read`), evaluated over delivery's own read
model of books, roles and entitlements, kept from events (consumers.py). A free
published book needs no look-up at all; an entitled one needs the reader's facts,
loaded once per reader from delivery's database and cached until an event about
that reader arrives. Reading (reading.py) checks readers here; nothing here knows
of reading.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.delivery.models import PublishedBook
from services.delivery.repository import DeliveryRepository
from services.delivery.settings import DeliverySettings
from services.delivery.signing import CloudFrontSigner, S3LinkSigner, SignedCookies, SignerName
from shared.bus.outbox import GroupCommitRecorder
from shared.clients.localcache import InvalidatedCache
from shared.clients.ratelimit import SharedWindowLimiter
from shared.contracts.clock import now_utc
from shared.contracts.decisions import BookFacts, Decision, decide_book_read
from shared.contracts.errors import Conflict, Forbidden, NotFound, Problem, TooManyRequests
from shared.contracts.events import BookFormatName, DeliveryIssued
from shared.contracts.roles import Role
from shared.http.auth import Principal

BOOKS_CHANNEL = "delivery:books"
READERS_CHANNEL = "delivery:readers"


@dataclass(frozen=True)
class BookObject:
    """What a link needs to know about a book (or that it is not published)."""

    published: bool
    object_key: str | None = None
    object_version: str | None = None
    access: str = "entitled"
    # The lite edition of this very publication, once processed (else None).
    lite_key: str | None = None
    lite_version: str | None = None

    @classmethod
    def of(cls, row: PublishedBook) -> BookObject:
        """A book's object as delivery's read model holds it."""
        if not row.published or row.object_key is None:
            return NOT_PUBLISHED
        current_lite = row.lite_key is not None and row.lite_source_version == row.object_version
        return cls(
            True,
            row.object_key,
            row.object_version,
            row.access,
            row.lite_key if current_lite else None,
            row.lite_version if current_lite else None,
        )

    def file(self, book_format: BookFormatName) -> tuple[str, str | None]:
        """The object and version to sign for `book_format`; 409 while the lite
        edition is still being made (seconds after publishing)."""
        if book_format == "pdf-lite":
            if self.lite_key is None:
                raise Conflict(
                    "The lite edition of this book is not ready yet; ask again in a "
                    "minute, or ask for the PDF.",
                    code="format-not-ready",
                )
            return self.lite_key, self.lite_version
        assert self.object_key is not None
        return self.object_key, self.object_version

    @property
    def facts(self) -> BookFacts:
        return BookFacts(published=self.published, access=self.access)


@dataclass(frozen=True)
class ReaderFacts:
    """What delivery's read model knows of one reader."""

    role: Role | None  # None: no event about this account has arrived yet
    entitlements: dict[uuid.UUID, datetime | None]  # book -> latest expiry (None: never)

    def entitled(self, book_id: uuid.UUID, now: datetime) -> bool:
        if book_id not in self.entitlements:
            return False
        expires_at = self.entitlements[book_id]
        return expires_at is None or expires_at > now


NOT_PUBLISHED = BookObject(published=False)
BookCache = InvalidatedCache[uuid.UUID, BookObject]
ReaderCache = InvalidatedCache[uuid.UUID, ReaderFacts]


def _longest_grants(
    rows: list[tuple[uuid.UUID, datetime | None]],
) -> dict[uuid.UUID, datetime | None]:
    """Each book's latest expiry over a reader's grants (None: one never expires)."""
    entitlements: dict[uuid.UUID, datetime | None] = {}
    for book_id, expires_at in rows:
        if book_id in entitlements:
            known = entitlements[book_id]
            expires_at = None if known is None or expires_at is None else max(known, expires_at)
        entitlements[book_id] = expires_at
    return entitlements


def needs_reader(book: BookObject) -> bool:
    """Whether deciding on this book needs the reader's facts: a free published book
    is open to every signed-in reader, whatever their role or entitlements."""
    return book.published and book.access != "free"


def decide(
    principal: Principal,
    book_id: uuid.UUID,
    book: BookObject,
    reader: ReaderFacts | None,
    now: datetime,
) -> Decision:
    """The platform's rule over delivery's read model.

    The role is the account's current one once an event has told it; before the
    first event about a new account arrives, the one its token was issued with
    (signed by access minutes ago at most). `reader` may be None only where
    `needs_reader` says the book needs no facts about the reader.
    """
    role = reader.role if reader is not None and reader.role is not None else principal.role
    # Asked only where the rule needs it (an entitled book, a reader below the
    # roles that read everything published).
    return decide_book_read(
        role,
        book.facts,
        entitled=lambda: reader is not None and reader.entitled(book_id, now),
    )


@dataclass(frozen=True)
class IssuedLink:
    url: str
    expires_at: datetime
    signer: SignerName

    def json(self) -> bytes:
        # By hand: this is the hot path's whole answer (see DeliveryOut for its schema).
        return json.dumps(
            {
                "url": self.url,
                "expires_at": self.expires_at.isoformat().replace("+00:00", "Z"),
                "method": "GET",
                "signer": self.signer,
            }
        ).encode()


class CookiesNotConfigured(Problem):
    # A 404, not a 501: a client asking a deployment that signs with S3 has made
    # no server error, and must not trip the 5xx-rate alarm.
    status, code, title = 404, "cookies-not-configured", "Not available here"


@dataclass
class LinkParts:
    """The long-lived parts links are made with (built in components.py)."""

    settings: DeliverySettings
    books: BookCache
    readers: ReaderCache
    s3_signer: S3LinkSigner
    cloudfront: CloudFrontSigner | None
    limiter: SharedWindowLimiter
    recorder: GroupCommitRecorder
    # Sessions for reads, in autocommit: one round trip a query, no BEGIN/ROLLBACK.
    reads: async_sessionmaker[AsyncSession]


def link_lifetime(
    now: datetime, token_expires_at: datetime, *, link_seconds: int, step_seconds: int
) -> tuple[datetime, int]:
    """When a link expires, and its lifetime in whole seconds from `now`.

    Never after the caller's token, never longer than `link_seconds`; the
    expiry is a whole second rounded down to a multiple of `step_seconds` (so
    concurrent readers of a book share one link), unless rounding would take
    more than half the lifetime away (a short-lived token, or a step too big
    for the configured lifetime), when it keeps its own second.
    """
    start = math.floor(now.timestamp())
    latest = min(start + link_seconds, math.floor(token_expires_at.timestamp()))
    aligned = latest - latest % step_seconds
    expires = aligned if (aligned - start) * 2 >= latest - start else latest
    expires = max(expires, start + 1)
    return datetime.fromtimestamp(expires, UTC), expires - start


class LinkService:
    """Built once and shared by every request: all it holds is long-lived."""

    def __init__(self, parts: LinkParts) -> None:
        self.parts = parts
        self.settings = parts.settings
        # Every read of this service is one statement: no transaction around it.
        self.session_factory = parts.reads

    async def book_object(self, book_id: uuid.UUID) -> BookObject:
        async def load() -> BookObject:
            async with self.session_factory() as session:
                row = await DeliveryRepository(session).published_book(book_id)
            return NOT_PUBLISHED if row is None else BookObject.of(row)

        return await self.parts.books.get_or_load(book_id, load)

    async def reader_facts(self, user_id: uuid.UUID) -> ReaderFacts:
        async def load() -> ReaderFacts:
            async with self.session_factory() as session:
                repository = DeliveryRepository(session)
                role = await repository.reader_role(user_id)
                rows = await repository.live_entitlements(user_id)
            return ReaderFacts(Role(role) if role else None, _longest_grants(rows))

        return await self.parts.readers.get_or_load(user_id, load)

    async def warm_up(self, *, max_readers: int) -> tuple[int, int]:
        """Load every published book and up to `max_readers` readers into the caches
        in a few queries: a new process (a deploy) then answers its first readers
        from memory instead of paying one query per reader while they all arrive."""

        async def books() -> dict[uuid.UUID, BookObject]:
            async with self.session_factory() as session:
                rows = await DeliveryRepository(session).published_books()
            return {row.book_id: BookObject.of(row) for row in rows}

        async def readers() -> dict[uuid.UUID, ReaderFacts]:
            async with self.session_factory() as session:
                repository = DeliveryRepository(session)
                roles = await repository.all_readers(max_readers)
                grants = await repository.all_live_entitlements()
            held: dict[uuid.UUID, list[tuple[uuid.UUID, datetime | None]]] = {}
            for user_id, book_id, expires_at in grants:
                held.setdefault(user_id, []).append((book_id, expires_at))
            return {
                user_id: ReaderFacts(Role(role), _longest_grants(held.get(user_id, [])))
                for user_id, role in roles
            }

        return await self.parts.books.prime(books), await self.parts.readers.prime(readers)

    async def readable(self, principal: Principal, book_id: uuid.UUID) -> BookObject:
        """The book's object, if it is published and this reader may read it (else 404/403)."""
        if principal.kind != "user":
            raise Forbidden("Links are for readers, not services.")
        book = await self.book_object(book_id)
        if not book.published:
            raise NotFound("No such published book.")
        reader = await self.reader_facts(principal.user_id) if needs_reader(book) else None
        decision = decide(principal, book_id, book, reader, now_utc())
        if not decision.allow:
            raise Forbidden(f"Not allowed: {decision.reason}.", code="decision-denied")
        return book

    def _limit(self, principal: Principal) -> None:
        state = self.parts.limiter.hit(principal.subject)
        if state.exceeded(self.parts.limiter.limit):
            raise TooManyRequests(
                "Too many links asked for; try again shortly.", retry_after=state.retry_after
            )

    def _lifetime(self, principal: Principal) -> tuple[datetime, int]:
        return link_lifetime(
            now_utc(),
            principal.expires_at,
            link_seconds=self.settings.link_seconds,
            step_seconds=self.settings.link_expiry_step_seconds,
        )

    async def issue(
        self,
        principal: Principal,
        book_id: uuid.UUID,
        *,
        client_ip: str | None,
        book_format: BookFormatName = "pdf",
    ) -> IssuedLink:
        book = await self.readable(principal, book_id)
        return await self.sign_and_record(
            principal, book_id, book, client_ip=client_ip, book_format=book_format
        )

    async def sign_and_record(
        self,
        principal: Principal,
        book_id: uuid.UUID,
        book: BookObject,
        *,
        client_ip: str | None,
        book_format: BookFormatName = "pdf",
    ) -> IssuedLink:
        object_key, object_version = book.file(book_format)
        self._limit(principal)
        expires_at, _ = self._lifetime(principal)
        signer: SignerName
        if self.settings.signer == "cloudfront" and self.parts.cloudfront is not None:
            url = self.parts.cloudfront.signed_url(
                object_key,
                object_version,
                expires_at=expires_at,
                client_ip=client_ip if self.settings.cloudfront_bind_client_ip else None,
            )
            signer = "cloudfront"
        else:
            url = await self.parts.s3_signer.signed_url(
                object_key,
                object_version,
                expires_at=expires_at,
            )
            signer = "s3"
        await self.parts.recorder.record(
            DeliveryIssued(book_id=book_id, user_id=principal.user_id, method=signer)
        )
        return IssuedLink(url, expires_at, signer)

    async def issue_cookies(
        self, principal: Principal, book_id: uuid.UUID, *, client_ip: str | None
    ) -> tuple[SignedCookies, datetime]:
        if self.parts.cloudfront is None:
            raise CookiesNotConfigured(
                "This deployment signs links with S3; signed cookies need CloudFront "
                "(DELIVERY_SIGNER=cloudfront). Use POST /v1/deliveries for a link."
            )
        await self.readable(principal, book_id)
        self._limit(principal)
        expires_at, _ = self._lifetime(principal)
        cookies = self.parts.cloudfront.signed_cookies(
            f"books/{book_id}",
            expires_at=expires_at,
            client_ip=client_ip if self.settings.cloudfront_bind_client_ip else None,
        )
        await self.parts.recorder.record(
            DeliveryIssued(book_id=book_id, user_id=principal.user_id, method="cloudfront-cookies")
        )
        return cookies, expires_at
