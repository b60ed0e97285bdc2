"""The next book (#42) in the access service: each reader's history from delivery's
events, the model refitted from it, and a reader's picks at request time.

Why access: the picks' first rules are what a reader can open (free books, their
entitlements, their classes' assignments) and the languages they say they read,
and those live here; the reading comes by events, as every service's data does (a
link, `delivery.issued`, is a book opened online; `reading.opened` one offline).

The model (book -> nearest books, and each book's recent popularity) is refitted
in the worker every `ACCESS_RECOMMENDATIONS_REFIT_SECONDS` from the whole history,
and at once when an erased reader's history has gone (their `user.erased`); a
reader's own reads count in their picks from the moment they arrive. A request
reads a few rows: the reader's history, their books' neighbours, the most read
books in their languages, and which of those they may open.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import case, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.access.accounts import AccountService
from services.access.models import BookLikeness, CatalogBook, Entitlement, ReadingHistory, User
from services.access.recommender import (
    BookFacts,
    Learner,
    Model,
    Read,
    Recommendations,
    fit,
    reading_languages,
    recommend,
)
from services.access.repository import live_entitlement
from services.access.settings import AccessSettings
from shared.bus.consumer import EventContext
from shared.clients.db import unit_of_work, upsert
from shared.clients.localcache import InvalidatedCache
from shared.contracts.clock import now_utc
from shared.contracts.decisions import READ_ANY_PUBLISHED
from shared.contracts.events import DeliveryIssued, ReadingCompleted, ReadingOpened, UserErased
from shared.contracts.roles import Role
from shared.http.auth import Principal
from shared.resources import Resources
from shared.service.periodic import every
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

# The model as the API reads it, kept in each API process between refits: the
# worker tells every process (Redis pub/sub) when it refits or a book changes.
MODEL_CHANNEL = "access-next-books"
MODEL_TTL_SECONDS = 600.0

# The most read books a request considers beside its neighbours: enough to fill
# a list after the rules have taken out what does not fit.
POPULAR_CANDIDATES = 50
INSERT_BATCH = 1000


# --- the history, from delivery's events ---------------------------------------------


async def record_read(
    context: EventContext, event: DeliveryIssued | ReadingOpened | ReadingCompleted
) -> None:
    """A reader opened a book (a link online, reading.opened offline) or finished it:
    their row for it, the earliest and latest
    time kept, and finished once finished. An event of an account that is not here
    (erased, or late from a device) is dropped: nothing of an erased reader comes back."""
    session = context.session
    if await session.get(User, event.user_id) is None:
        return
    at = context.envelope.time
    completed = isinstance(event, ReadingCompleted)
    statement = upsert(session, ReadingHistory).values(
        user_id=event.user_id, book_id=event.book_id, first_at=at, last_at=at, completed=completed
    )
    new = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["user_id", "book_id"],
            set_={
                "first_at": case(
                    (new.first_at < ReadingHistory.first_at, new.first_at),
                    else_=ReadingHistory.first_at,
                ),
                "last_at": case(
                    (new.last_at > ReadingHistory.last_at, new.last_at),
                    else_=ReadingHistory.last_at,
                ),
                "completed": or_(ReadingHistory.completed, new.completed),
            },
        )
    )


async def refit_after_erasure(context: EventContext, event: UserErased) -> None:
    """The account's history went with it (a foreign key); the model forgets it now."""
    await refit(context.session, now_utc())
    model_changed_after_commit(context)


def model_changed_after_commit(context: EventContext) -> None:
    """Every API process drops its copy of the model once this change is committed."""
    context.after_commit(lambda: context.resources.bus.publish(MODEL_CHANNEL, "*"))


# --- the model ----------------------------------------------------------------------


def _facts(book: CatalogBook) -> BookFacts:
    return BookFacts(
        str(book.book_id), book.title or "", book.language, book.reading_level,
        str(book.family_id) if book.family_id else None,
    )  # fmt: skip


def _read(row: ReadingHistory) -> Read:
    return Read(str(row.user_id), str(row.book_id), row.last_at.timestamp(), row.completed)


async def refit(session: AsyncSession, now: datetime) -> int:
    """The whole model from the whole history, replacing the last one; its rows."""
    reads = [_read(row) for row in await session.scalars(select(ReadingHistory))]
    facts = {str(b.book_id): _facts(b) for b in await session.scalars(select(CatalogBook))}
    model = fit(reads, now=now.timestamp(), facts=facts)
    await session.execute(delete(BookLikeness))
    rows = [
        {"book_id": uuid.UUID(book), "other_id": uuid.UUID(other), "likeness": likeness}
        for book, others in model.neighbours.items()
        for other, likeness in others.items()
    ]
    for start in range(0, len(rows), INSERT_BATCH):
        await session.execute(insert(BookLikeness), rows[start : start + INSERT_BATCH])
    await session.execute(update(CatalogBook).values(popularity=0.0))
    for book, popularity in model.popularity.items():
        await session.execute(
            update(CatalogBook)
            .where(CatalogBook.book_id == uuid.UUID(book))
            .values(popularity=popularity)
        )
    return len(rows)


async def keep_next_books_fitted(
    resources: Resources, settings: ServiceSettings, stop: asyncio.Event
) -> None:
    assert isinstance(settings, AccessSettings)

    async def step() -> bool:
        async with unit_of_work(resources.session_factory) as session:
            rows = await refit(session, now_utc())
        await resources.bus.publish(MODEL_CHANNEL, "*")
        log.info("next books: model refitted", likeness_rows=rows)
        return False

    await every(
        settings.recommendations_refit_seconds, stop, step, failure="next books not refitted"
    )


# --- a reader's picks -----------------------------------------------------------------


@dataclass(frozen=True)
class BookRow:
    """What a pick needs of a book."""

    book_id: uuid.UUID
    title: str | None
    language: str | None
    reading_level: str | None
    family_id: uuid.UUID | None
    access: str
    published: bool
    popularity: float

    def facts(self) -> BookFacts:
        return BookFacts(
            str(self.book_id), self.title or "", self.language, self.reading_level,
            str(self.family_id) if self.family_id else None,
        )  # fmt: skip


@dataclass(frozen=True)
class ModelView:
    """The model and the books as the last refit left them: what every request reads."""

    books: dict[str, BookRow]
    neighbours: dict[str, dict[str, float]]
    facts: dict[str, BookFacts]

    def most_read(self, languages: Sequence[str]) -> list[str]:
        chosen = [
            key for key, b in self.books.items()
            if b.published and (not languages or b.language in languages)
        ]  # fmt: skip
        chosen.sort(key=lambda key: (-self.books[key].popularity, key))
        return chosen[:POPULAR_CANDIDATES]


ModelCache = InvalidatedCache[str, ModelView]


def model_cache(resources: Resources) -> ModelCache:
    return InvalidatedCache(resources.bus, MODEL_CHANNEL, ttl=MODEL_TTL_SECONDS, max_entries=4)


async def load_model(session: AsyncSession) -> ModelView:
    rows = await session.execute(
        select(
            CatalogBook.book_id, CatalogBook.title, CatalogBook.language,
            CatalogBook.reading_level, CatalogBook.family_id, CatalogBook.access,
            CatalogBook.published, CatalogBook.popularity,
        )
    )  # fmt: skip
    books = {str(row[0]): BookRow(*row) for row in rows.all()}
    neighbours: dict[str, dict[str, float]] = {}
    likeness = await session.execute(
        select(BookLikeness.book_id, BookLikeness.other_id, BookLikeness.likeness)
    )
    for book_id, other_id, value in likeness.all():
        neighbours.setdefault(str(book_id), {})[str(other_id)] = value
    return ModelView(books, neighbours, {key: b.facts() for key, b in books.items()})


@dataclass
class Picked:
    recommendations: Recommendations
    books: dict[str, BookRow]  # every book a pick or a reason names
    due: dict[uuid.UUID, datetime | None]  # the assigned ones' due dates


@dataclass
class NextBooks:
    accounts: AccountService
    model: ModelCache

    @property
    def session(self) -> AsyncSession:
        return self.accounts.session

    async def set_reading_languages(self, principal: Principal, languages: list[str]) -> User:
        user = await self.accounts.current_user(principal)
        user.reading_languages = list(dict.fromkeys(languages))
        user.updated_at = now_utc()
        self.accounts.invalidate_user_after_commit(user.id)
        return user

    async def for_reader(self, principal: Principal, limit: int) -> Picked:
        user = await self.accounts.current_user(principal)
        now = now_utc()
        view = await self.model.get_or_load("model", lambda: load_model(self.session))
        history = (
            await self.session.execute(
                select(
                    ReadingHistory.book_id, ReadingHistory.last_at, ReadingHistory.completed
                ).where(ReadingHistory.user_id == user.id)
            )
        ).all()
        due = await self.accounts.repository.assigned_to(user.id)
        far = datetime.max.replace(tzinfo=UTC)
        assigned = [str(b) for b in sorted(due, key=lambda b: (due[b] or far, str(b)))]
        reader = str(user.id)
        learner = Learner(
            history=[Read(reader, str(b), at.timestamp(), done) for b, at, done in history],
            declared_languages=user.reading_languages,
        )
        languages = reading_languages(learner, view.facts, assigned)
        seeds = [str(row[0]) for row in history]
        wanted = {o for seed in seeds for o in view.neighbours.get(seed, {})}
        wanted |= {*view.most_read(languages), *assigned}
        candidates = [view.books[key] for key in wanted if key in view.books]
        readable = await self._readable(user, [b for b in candidates if b.published], now)
        recommendations = recommend(
            Model(
                {seed: view.neighbours[seed] for seed in seeds if seed in view.neighbours},
                {key: view.books[key].popularity for key in wanted if key in view.books},
            ),
            learner,
            catalog=view.facts,
            readable=readable,
            assigned=assigned,
            now=now.timestamp(),
            limit=limit,
        )
        return Picked(recommendations, view.books, due)

    async def _readable(self, user: User, books: Sequence[BookRow], now: datetime) -> list[str]:
        """Which of these the reader may open now: the rule of `/v1/users/me/books`."""
        if Role(user.role).at_least(READ_ANY_PUBLISHED):
            return [str(b.book_id) for b in books]
        entitled: set[uuid.UUID] = set()
        for chunk in _chunks(b.book_id for b in books if b.access != "free"):
            entitled |= set(
                await self.session.scalars(
                    select(Entitlement.book_id).where(
                        live_entitlement(user.id, now), Entitlement.book_id.in_(chunk)
                    )
                )
            )
        return [str(b.book_id) for b in books if b.access == "free" or b.book_id in entitled]


def _chunks(ids: Iterable[uuid.UUID]) -> list[list[uuid.UUID]]:
    """At most INSERT_BATCH ids an IN list: within every driver's bound."""
    chosen = sorted(set(ids))
    return [chosen[start : start + INSERT_BATCH] for start in range(0, len(chosen), INSERT_BATCH)]
