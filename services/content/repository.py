"""Queries of the content service. No rules here: the rule modules decide, this reads and writes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.models import (
    SIMPLE_SEARCH,
    TEXT_SEARCH_CONFIGS,
    Book,
    BookStatus,
    FingerprintBand,
    ManuscriptFingerprint,
    ReadingLevelThresholds,
    Submission,
    SubmissionTransition,
    text_search_config,
)
from shared.contracts.clock import now_utc
from shared.contracts.text import primary_language
from shared.http.pagination import after_cursor


@dataclass(frozen=True)
class CatalogQuery:
    """A normalized catalog request; also the catalog cache's key."""

    language: str | None = None
    category: str | None = None
    age: int | None = None
    reading_level: str | None = None
    text: str | None = None
    family: uuid.UUID | None = None
    status: str | None = BookStatus.PUBLISHED.value
    after: tuple[str, str] | None = None
    limit: int = 20


class ContentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)

    async def submission(
        self, submission_id: uuid.UUID, *, for_update: bool = False
    ) -> Submission | None:
        query = select(Submission).where(Submission.id == submission_id)
        if for_update:
            # Serializes transitions of one submission: the second waits, then
            # sees the new version and fails its If-Match.
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def own_submissions(
        self,
        author_id: uuid.UUID,
        *,
        status: str | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Submission]:
        query = select(Submission).where(Submission.author_id == author_id)
        if status is not None:
            query = query.where(Submission.status == status)
        if after is not None:
            query = query.where(
                after_cursor(Submission.created_at, Submission.id, after, descending=True)
            )
        query = query.order_by(Submission.created_at.desc(), Submission.id.desc()).limit(limit)
        return list(await self.session.scalars(query))

    async def review_queue(
        self,
        *,
        statuses: list[str],
        language: str | None,
        languages: tuple[str, ...] | None,
        age: int | None,
        flagged: bool | None = None,
        after: tuple[bool, datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Submission]:
        """Flagged work first, then the oldest submission first."""
        query = select(Submission).where(Submission.status.in_(statuses))
        if flagged is not None:
            query = query.where(Submission.flagged.is_(flagged))
        if language is not None:
            query = query.where(Submission.language == language)
        if languages:
            # A reviewer's languages: "sw" covers "sw-KE" (see reviews_language).
            query = query.where(
                or_(
                    *(
                        or_(
                            func.lower(Submission.language) == tag,
                            func.lower(Submission.language).startswith(f"{tag}-", autoescape=True),
                        )
                        for tag in languages
                    )
                )
            )
        if age is not None:
            query = query.where(Submission.age_min <= age, Submission.age_max >= age)
        if after is not None:
            was_flagged, submitted_at, row_id = after
            later = after_cursor(Submission.submitted_at, Submission.id, (submitted_at, row_id))
            # After a flagged row: the later flagged ones, then every unflagged one.
            query = query.where(
                or_(Submission.flagged.is_(False), and_(Submission.flagged.is_(True), later))
                if was_flagged
                else and_(Submission.flagged.is_(False), later)
            )
        order = (Submission.flagged.desc(), Submission.submitted_at, Submission.id)
        query = query.order_by(*order).limit(limit)
        return list(await self.session.scalars(query))

    async def history(self, submission_id: uuid.UUID) -> list[SubmissionTransition]:
        rows = await self.session.scalars(
            select(SubmissionTransition)
            .where(SubmissionTransition.submission_id == submission_id)
            .order_by(SubmissionTransition.at, SubmissionTransition.id)
        )
        return list(rows)

    async def book(self, book_id: uuid.UUID, *, for_update: bool = False) -> Book | None:
        query = select(Book).where(Book.id == book_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def book_of_submission(self, submission_id: uuid.UUID) -> Book | None:
        return (
            await self.session.scalars(select(Book).where(Book.submission_id == submission_id))
        ).first()

    def catalog_statement(self, query: CatalogQuery) -> Select[Book]:
        statement = select(Book)
        if query.status is not None:
            statement = statement.where(Book.status == query.status)
        if query.language is not None:
            statement = statement.where(Book.language == query.language)
        if query.category is not None:
            statement = statement.where(Book.category == query.category)
        if query.reading_level is not None:
            statement = statement.where(Book.reading_level == query.reading_level)
        if query.family is not None:
            statement = statement.where(Book.family_id == query.family)
        if query.age is not None:
            statement = statement.where(Book.age_min <= query.age, Book.age_max >= query.age)
        if query.text is not None:
            statement = statement.where(self._matches_text(query.text, query.language))
        # Published books: newest publication first. Others (managers' views):
        # most recently changed first. Ties broken by id, so the order is stable.
        order = Book.published_at if query.status == BookStatus.PUBLISHED else Book.updated_at
        if query.after is not None:
            moment, book_id = query.after
            statement = statement.where(
                after_cursor(
                    order,
                    Book.id,
                    (datetime.fromisoformat(moment), uuid.UUID(book_id)),
                    descending=True,
                )
            )
        return statement.order_by(order.desc(), Book.id.desc()).limit(query.limit + 1)

    def _matches_text(self, text: str, language: str | None) -> Any:
        if self.session.get_bind().dialect.name == "postgresql":
            # Each book is stemmed in its own language's configuration: one branch
            # per configuration, each served by its partial GIN index (the same
            # expression and predicate), OR-ed by the planner. A language filter
            # needs only its own branch.
            configs = (
                [text_search_config(language)]
                if language is not None
                else [*TEXT_SEARCH_CONFIGS.values(), SIMPLE_SEARCH]
            )
            return or_(*(self._matches_in(config, text) for config in sorted(set(configs))))
        needle = text.lower()
        return or_(
            func.lower(Book.title).contains(needle, autoescape=True),
            func.lower(Book.summary).contains(needle, autoescape=True),
            func.lower(Book.body_text).contains(needle, autoescape=True),
        )

    @staticmethod
    def _matches_in(config_name: str, text: str) -> ColumnElement[bool]:
        # The configuration as SQL text, not a parameter: the planner must see
        # the index's exact expression to use it (names come from our own table).
        config: ColumnElement[str] = literal_column(f"'{config_name}'")
        # The separators as SQL text too: a bound ' ' is a parameter to a generic
        # plan, whose expression then no longer matches the index's.
        space: ColumnElement[str] = literal_column("' '")
        document = func.to_tsvector(
            config,
            Book.title.op("||")(space)
            .op("||")(Book.summary)
            .op("||")(space)
            .op("||")(Book.body_text),
        )
        return and_(
            Book.search_config == config,  # literal too: the partial index's predicate
            document.op("@@")(func.plainto_tsquery(config, text)),
        )

    async def published_books(self, book_ids: list[uuid.UUID]) -> list[Book]:
        """These books, those published, in the order given."""
        if not book_ids:
            return []
        found = {
            b.id: b
            for b in await self.session.scalars(
                select(Book).where(Book.id.in_(book_ids), Book.status == BookStatus.PUBLISHED.value)
            )
        }
        return [found[i] for i in book_ids if i in found]

    async def published_facets(
        self, query: CatalogQuery | None = None, *, ages: Sequence[int] = ()
    ) -> dict[str, dict[str, int]]:
        """How many published books each language, category and reading level has,
        and how many suit each of `ages`: the facets of the OPDS feeds (#20). Within
        `query`'s filter: each facet counted with the other facets' choices (and the
        search) applied, not its own, so a feed filtered by language shows how many
        of *those* books each level has (#38: the counts ignored the filter)."""
        query = query or CatalogQuery()
        facets: dict[str, dict[str, int]] = {}
        for name in ("language", "category", "reading_level"):
            column = getattr(Book, name)
            rows = await self.session.execute(
                select(column, func.count())
                .where(*self._published_within(query, leave_out=name))
                .group_by(column)
                .order_by(column)
            )
            facets[name] = {str(row[0]): int(row[1]) for row in rows.all()}
        if ages:
            suits = [
                func.sum(case((and_(Book.age_min <= age, Book.age_max >= age), 1), else_=0))
                for age in ages
            ]
            row = (
                await self.session.execute(
                    select(*suits).where(*self._published_within(query, leave_out="age"))
                )
            ).one()
            facets["age"] = {
                str(age): int(count or 0) for age, count in zip(ages, row, strict=True)
            }
        return facets

    def _published_within(self, query: CatalogQuery, *, leave_out: str) -> list[Any]:
        """The conditions of a published catalog query, but for one facet's own."""
        conditions: list[Any] = [Book.status == BookStatus.PUBLISHED.value]
        if query.language is not None and leave_out != "language":
            conditions.append(Book.language == query.language)
        if query.category is not None and leave_out != "category":
            conditions.append(Book.category == query.category)
        if query.reading_level is not None and leave_out != "reading_level":
            conditions.append(Book.reading_level == query.reading_level)
        if query.age is not None and leave_out != "age":
            conditions += [Book.age_min <= query.age, Book.age_max >= query.age]
        if query.text is not None:
            conditions.append(self._matches_text(query.text, query.language))
        return conditions

    async def catalog(self, query: CatalogQuery) -> list[Book]:
        return list(await self.session.scalars(self.catalog_statement(query)))

    async def family_members(self, family_ids: Iterable[uuid.UUID]) -> list[Book]:
        """Every book of these families, whatever its status (attribution walks them all)."""
        wanted = set(family_ids)
        if not wanted:
            return []
        return list(await self.session.scalars(select(Book).where(Book.family_id.in_(wanted))))

    async def family_participants(self, family_id: uuid.UUID) -> set[str]:
        """The accounts that took part in a family: the authors of its submissions and
        the accounts its books already credit (each checked when it was credited)."""
        authors = await self.session.scalars(
            select(Submission.author_id).where(Submission.family_id == family_id)
        )
        credits = await self.session.scalars(
            select(Book.credits).where(Book.family_id == family_id)
        )
        credited = {
            str(c["account_id"]) for row in credits for c in row or [] if c.get("account_id")
        }
        return {str(a) for a in authors} | credited

    async def published_in_slot(
        self, family_id: uuid.UUID, language: str, reading_level: str
    ) -> list[Book]:
        """The published book(s) of one family, language and level, locked to be retired.
        A language is its regional variants too: "en-GB" takes "en"'s slot (#37 F9)."""
        primary = primary_language(language)
        query = (
            select(Book)
            .where(
                Book.family_id == family_id,
                or_(Book.language == primary, Book.language.like(f"{primary}-%")),
                Book.reading_level == reading_level,
                Book.status == BookStatus.PUBLISHED.value,
            )
            .with_for_update()
        )
        return list(await self.session.scalars(query))

    async def confirmed_levels(self) -> list[tuple[str, dict[str, Any]]]:
        """Each reviewer-confirmed level with its manuscript's analysis (#40)."""
        rows = await self.session.execute(
            select(Submission.confirmed_level, Submission.analysis).where(
                Submission.confirmed_level.is_not(None), Submission.analysis.is_not(None)
            )
        )
        return [(str(level), dict(analysis)) for level, analysis in rows]

    async def fitted_thresholds(self) -> dict[str, list[float]]:
        """Each language's fitted reading-level thresholds (a handful of rows)."""
        rows = await self.session.scalars(select(ReadingLevelThresholds))
        return {row.language: [float(t) for t in row.thresholds] for row in rows}

    async def store_thresholds(self, language: str, thresholds: list[float], samples: int) -> None:
        row = await self.session.get(ReadingLevelThresholds, language)
        if row is None:
            row = ReadingLevelThresholds(language=language)
            self.session.add(row)
        row.thresholds, row.samples, row.fitted_at = thresholds, samples, now_utc()

    async def replace_fingerprint(
        self, fingerprint: ManuscriptFingerprint, bands: list[int]
    ) -> None:
        """A submission's fingerprint and bands, in place of those of its last manuscript."""
        for table in (FingerprintBand, ManuscriptFingerprint):
            await self.session.execute(
                delete(table).where(table.submission_id == fingerprint.submission_id)
            )
        self.session.add(fingerprint)
        self.session.add_all(
            FingerprintBand(band=band, submission_id=fingerprint.submission_id)
            for band in sorted(set(bands))
        )

    async def look_alikes(
        self, bands: list[int], submission_id: uuid.UUID, family_id: uuid.UUID
    ) -> list[tuple[ManuscriptFingerprint, Book | None]]:
        """The fingerprints outside this family that share a band with these, each
        with its published book if it has one."""
        if not bands:
            return []
        sharing = (
            select(FingerprintBand.submission_id)
            .where(FingerprintBand.band.in_(sorted(set(bands))))
            .distinct()
        )
        query = (
            select(ManuscriptFingerprint, Book)
            .outerjoin(
                Book,
                and_(
                    Book.submission_id == ManuscriptFingerprint.submission_id,
                    Book.status == BookStatus.PUBLISHED.value,
                ),
            )
            .where(
                ManuscriptFingerprint.submission_id.in_(sharing),
                ManuscriptFingerprint.submission_id != submission_id,
                ManuscriptFingerprint.family_id != family_id,
            )
        )
        return [(fingerprint, book) for fingerprint, book in await self.session.execute(query)]
