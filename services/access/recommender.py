"""The next book (#42): what a learner can read next, and why.

Plain code over plain values (no database, no framework, nothing but the standard
library), so the service, `stories recommend batch` and `stories bench
recommendations` fit and rank with the same lines.

The model is item-item. Two books are alike when the same readers read both
(co-reading: cosine over readers, each read weighted by how recent it is and by
whether it was finished, shrunk towards zero where few readers share the pair),
blended with how alike their texts are (given by content, which holds the texts)
and their facts (category, reading level). Each book keeps its nearest
neighbours only, so a ranking reads a few rows per book the learner has read.

A learner's picks follow rules a child's reading needs, in this order: books a
teacher assigned come first; then only books they can open, in the languages
they read, at their level or one step up, none they have read, and one version
of a story family at most; each with its reason.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

LEVELS = ("emergent", "early", "transitional", "fluent")
# A read half as old weighs twice as much: a child's taste moves within a term.
HALF_LIFE_DAYS = 30.0
# Opened and left weighs less than read to the end.
OPENED_WEIGHT = 0.5
NEIGHBOURS = 30
# A reader's most recent books that count towards co-reading: the pairs a reader
# adds grow with the square of their history, so the oldest are left out.
HISTORY_CAP = 60
# Damps a pair two readers share against one two hundred share (cosine alone
# scores both 1.0).
SHRINKAGE = 2.0
# How the three likenesses add up; co-reading leads, text and facts break the
# cold start of a book nobody has read yet.
CO_READING_WEIGHT, TEXT_WEIGHT, FACTS_WEIGHT = 1.0, 0.5, 0.1
SECONDS_PER_DAY = 86_400.0
LANGUAGE_SHARE = 0.2


@dataclass(frozen=True)
class Read:
    reader: str
    book: str
    at: float  # seconds since the epoch
    completed: bool = False


@dataclass(frozen=True)
class BookFacts:
    book: str
    title: str = ""
    language: str | None = None
    level: str | None = None
    family: str | None = None
    category: str | None = None
    age_min: int | None = None
    age_max: int | None = None


@dataclass
class Model:
    """Each book's nearest books (similarity in [0, 1.6]) and how much it is read
    lately (readers, weighted by recency)."""

    neighbours: dict[str, dict[str, float]] = field(default_factory=dict)
    popularity: dict[str, float] = field(default_factory=dict)


def recency(at: float, now: float, half_life_days: float = HALF_LIFE_DAYS) -> float:
    age_days = max(0.0, now - at) / SECONDS_PER_DAY
    return float(0.5 ** (age_days / half_life_days))


def reader_weights(reads: Iterable[Read], now: float) -> dict[str, dict[str, float]]:
    """reader -> book -> weight: the latest read of each book, by recency, and
    full for a finished book, half for one opened and left."""
    latest: dict[str, dict[str, tuple[float, bool]]] = defaultdict(dict)
    for read in reads:
        at, completed = latest[read.reader].get(read.book, (read.at, read.completed))
        latest[read.reader][read.book] = (max(at, read.at), completed or read.completed)
    return {
        reader: {
            book: recency(at, now) * (1.0 if completed else OPENED_WEIGHT)
            for book, (at, completed) in sorted(books.items(), key=lambda item: item[1][0])[
                -HISTORY_CAP:
            ]
        }
        for reader, books in latest.items()
    }


def fit(
    reads: Iterable[Read],
    *,
    now: float,
    text_likeness: Mapping[str, Mapping[str, float]] | None = None,
    facts: Mapping[str, BookFacts] | None = None,
    neighbours: int = NEIGHBOURS,
) -> Model:
    """The whole model from a reading log: what a scheduled refit runs."""
    weights = reader_weights(reads, now)
    shared: dict[tuple[str, str], float] = defaultdict(float)
    squares: dict[str, float] = defaultdict(float)
    popularity: dict[str, float] = defaultdict(float)
    for books in weights.values():
        items = sorted(books.items())
        for index, (first, weight) in enumerate(items):
            squares[first] += weight * weight
            popularity[first] += weight
            for second, other in items[index + 1 :]:
                shared[(first, second)] += weight * other
    likeness: dict[str, dict[str, float]] = defaultdict(dict)
    for (first, second), together in shared.items():
        cosine = together / (math.sqrt(squares[first] * squares[second]) + SHRINKAGE)
        likeness[first][second] = likeness[second][first] = CO_READING_WEIGHT * cosine
    texts: dict[tuple[str, str], float] = {}  # each pair once, however it was given
    for first, others in (text_likeness or {}).items():
        for second, similarity in others.items():
            if first != second:
                pair = (min(first, second), max(first, second))
                texts[pair] = max(texts.get(pair, 0.0), similarity)
    for (first, second), similarity in texts.items():
        for a, b in ((first, second), (second, first)):
            likeness[a][b] = likeness[a].get(b, 0.0) + TEXT_WEIGHT * similarity
    if facts:
        for first, others in likeness.items():
            for second in others:
                others[second] += FACTS_WEIGHT * facts_likeness(facts.get(first), facts.get(second))
    return Model(
        neighbours={
            book: dict(heapq.nlargest(neighbours, others.items(), key=lambda item: item[1]))
            for book, others in likeness.items()
        },
        popularity=dict(popularity),
    )


def facts_likeness(first: BookFacts | None, second: BookFacts | None) -> float:
    """1.0 for the same category at the same level, 0.5 for one of the two."""
    if first is None or second is None:
        return 0.0
    same_category = first.category is not None and first.category == second.category
    same_level = first.level is not None and first.level == second.level
    return (same_category + same_level) / 2


@dataclass(frozen=True)
class Pick:
    book: str
    # "assigned" (by a teacher), "because-you-read" (`because` names the book)
    # or "popular" (at the learner's level, in the book's language).
    reason: str
    score: float = 0.0
    because: str | None = None


@dataclass
class Recommendations:
    picks: list[Pick]
    # Why the list is short or empty, or None: "no-history" (popular books for a
    # new reader), "no-books-in-language", "read-everything".
    note: str | None = None


@dataclass(frozen=True)
class Learner:
    history: Sequence[Read] = ()
    declared_languages: Sequence[str] = ()
    age: int | None = None


def reading_languages(
    learner: Learner, catalog: Mapping[str, BookFacts], assigned: Iterable[str] = ()
) -> list[str]:
    """The languages they read, most read first: those of at least a fifth of the
    books they chose (an assigned book says what the teacher reads, and one book in
    another language read once is not a language they read); their declared ones
    before they have read anything."""
    chosen = {r.book for r in learner.history} - set(assigned)
    books = chosen or {r.book for r in learner.history}
    counts: dict[str, int] = defaultdict(int)
    for book in books:
        language = catalog.get(book, BookFacts(book)).language
        if language:
            counts[language] += 1
    if counts:
        enough = LANGUAGE_SHARE * sum(counts.values())
        return sorted(
            (language for language, count in counts.items() if count >= enough),
            key=lambda language: (-counts[language], language),
        )
    return list(learner.declared_languages)


def levels_for(learner: Learner, catalog: Mapping[str, BookFacts]) -> set[str] | None:
    """Their level and one step up, judged from the highest level among their last
    three finished books (or, with none finished, the lowest they opened); None
    where nothing says (no level rule)."""

    def rank(read: Read) -> int | None:
        level = catalog.get(read.book, BookFacts(read.book)).level
        return LEVELS.index(level) if level in LEVELS else None

    finished = sorted((r for r in learner.history if r.completed), key=lambda r: r.at)
    ranks = [rank(r) for r in finished[-3:]]
    known = [r for r in ranks if r is not None]
    if known:
        level = max(known)
    else:
        opened = [r for r in (rank(read) for read in learner.history) if r is not None]
        if not opened:
            return None
        level = min(opened)
    return set(LEVELS[level : level + 2])


def recommend(
    model: Model,
    learner: Learner,
    *,
    catalog: Mapping[str, BookFacts],
    readable: Iterable[str],
    assigned: Sequence[str] = (),
    now: float,
    limit: int = 10,
) -> Recommendations:
    """A learner's next books, best first. `catalog` holds the facts of every book
    (read ones too); `readable` the books they can open now; `assigned`, the ones
    their teachers assigned, soonest due first."""
    read = {r.book for r in learner.history}
    languages = reading_languages(learner, catalog, assigned)
    read_in: dict[str, set[str | None]] = defaultdict(set)  # family -> languages read in
    for book in read:
        facts = catalog.get(book)
        if facts is not None and facts.family is not None:
            read_in[facts.family].add(facts.language)
    several_languages = len(languages) > 1
    picks: list[Pick] = []
    families: set[str] = set()

    def take(book: str, reason: str, score: float = 0.0, because: str | None = None) -> None:
        family = catalog.get(book, BookFacts(book)).family
        if family is not None:
            families.add(family)
        picks.append(Pick(book, reason, round(score, 4), because))

    openable = set(readable)
    for book in assigned:  # the teacher's choice: no language or level rule
        if book in openable and book not in read and len(picks) < limit:
            take(book, "assigned")
    levels = levels_for(learner, catalog)

    def eligible(book: str) -> bool:
        facts = catalog.get(book, BookFacts(book))
        if book in read or any(p.book == book for p in picks):
            return False
        if facts.family is not None:
            if facts.family in families:
                return False  # one version of a story at most
            versions = read_in.get(facts.family)
            if versions and (not several_languages or facts.language in versions):
                return False
        if languages and facts.language is not None and facts.language not in languages:
            return False
        if levels is not None and facts.level is not None and facts.level not in levels:
            return False
        return not (
            not learner.history
            and learner.age is not None
            and (
                (facts.age_min is not None and learner.age < facts.age_min)
                or (facts.age_max is not None and learner.age > facts.age_max)
            )
        )

    candidates = [book for book in openable if eligible(book)]
    scores: dict[str, float] = defaultdict(float)
    best: dict[str, tuple[float, str]] = {}
    weights = reader_weights(learner.history, now).get(_reader_of(learner), {})
    wanted = set(candidates)
    for seen, weight in weights.items():
        for book, similarity in model.neighbours.get(seen, {}).items():
            if book in wanted:
                contribution = weight * similarity
                scores[book] += contribution
                if contribution > best.get(book, (0.0, ""))[0]:
                    best[book] = (contribution, seen)
    for book in sorted(scores, key=lambda b: (-scores[b], b)):
        if len(picks) >= limit:
            break
        if eligible(book):
            take(book, "because-you-read", scores[book], best[book][1])
    for book in sorted(candidates, key=lambda b: (-model.popularity.get(b, 0.0), b)):
        if len(picks) >= limit:
            break
        if eligible(book):
            take(book, "popular", model.popularity.get(book, 0.0))
    return Recommendations(picks, _note(learner, picks, languages, openable, catalog))


def _reader_of(learner: Learner) -> str:
    return learner.history[0].reader if learner.history else ""


def _note(
    learner: Learner,
    picks: list[Pick],
    languages: list[str],
    openable: set[str],
    catalog: Mapping[str, BookFacts],
) -> str | None:
    if not learner.history:
        return "no-history"
    if picks:
        return None
    if languages and not any(
        catalog.get(book, BookFacts(book)).language in languages for book in openable
    ):
        return "no-books-in-language"
    return "read-everything"
