"""A learner's month of reading, made up the same way every run: the same learner
and date always give the same events, with the same ids, which delivery takes once."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from stories.demo.library import DAYS, EVENT_IDS, LANGUAGES, Story

SHELF_FREE_BOOKS = 6


def reading_history(index: int, shelf: list[str], now: datetime) -> list[dict[str, Any]]:
    """One learner's month up to yesterday (the DAYS - 1 days before today, so that
    any 30-day window drawn today, as the dashboard's, holds all of it): on most
    school days a book or two, read at a time of day of their own, page by page,
    now and then to the end.

    Each day is drawn from its own seed (the learner and the date) and today is left
    out, so a second run on the same day sends exactly the events of the first and
    delivery takes none of them again; a run on a later day adds only the new days.
    (Drawing from the clock or from "days ago" made a run that crossed an hour move
    today's cut-off, and one that crossed midnight renamed every event.)"""
    habit = random.Random(index).choice((8, 10, 13, 16, 19))  # the hour they usually read
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    events: list[dict[str, Any]] = []
    for days_ago in range(DAYS - 1, 0, -1):
        day = today - timedelta(days=days_ago)
        rng = random.Random(f"{index}:{day.date().isoformat()}")
        weekend = day.weekday() >= 5
        if rng.random() > (0.35 if weekend else 0.7):
            continue
        for session in range(rng.choice((1, 1, 2))):
            book = rng.choice(shelf)
            at = day.replace(hour=(habit + 3 * session + rng.randrange(-1, 2)) % 24)
            read_to = rng.randrange(2, PAGES_READ + 1)
            key = f"{index}:{book}:{day.date().isoformat()}:{session}"
            events.append(_event(key, book, at, "open"))
            events += [
                _event(key, book, at + timedelta(minutes=page), "progress", page)
                for page in range(1, read_to + 1)
            ]
            if read_to == PAGES_READ and rng.random() < 0.7:
                done = at + timedelta(minutes=PAGES_READ + 1)
                events.append(_event(key, book, done, "complete", PAGES_READ))
    return events


def demo_assignments(library: list[Story]) -> list[Story]:
    """The class's assigned books: two entitled ones and the first free one."""
    entitled = [s for s in library if s.access == "entitled"]
    free = [s for s in library if s.access == "free"]
    return [*entitled[:2], free[0]]


def learner_languages(index: int) -> tuple[str, ...]:
    """A learner's home language, and English as well for every fourth one (read at
    school): the class is a mix, as a school's is."""
    home = LANGUAGES[index % len(LANGUAGES)]
    return (home, "en") if index % 4 == 1 and home != "en" else (home,)


def learner_shelf(index: int, library: list[Story], assigned: list[Story]) -> list[Story]:
    """What a learner picks their reading from: the class's assigned books, and free
    books in the languages they read, as a child chooses them. Every third learner
    is a younger reader, who takes a story's easier telling where it has one; each
    learner has a taste (the odd or the even families, four times as likely), and
    takes one telling of a story in each of their languages. The same learner
    always has the same shelf, so the demo's month is the same on every run, and
    #42's benchmark reads the same history the demo sends."""
    rng = random.Random(f"shelf:{index}")
    languages = learner_languages(index)
    younger = index % 3 == 0
    taste = (index // len(LANGUAGES)) % 2
    easier = {(s.number, s.language) for s in library if s.adaptation}
    free = [
        s for s in library
        if s.access == "free" and s.language in languages and s not in assigned
        # The easier telling for a younger reader where there is one, else the full one.
        and s.adaptation == (younger and (s.number, s.language) in easier)
    ]  # fmt: skip
    shelf: list[Story] = []
    while free and len(shelf) < SHELF_FREE_BOOKS:
        weights = [4 if s.number % 2 == taste else 1 for s in free]
        chosen = rng.choices(free, weights)[0]
        shelf.append(chosen)
        free = [s for s in free if s is not chosen]
    return [*assigned, *shelf]


PAGES_READ = 8  # the pages of a book as its reader's device counts them


def _event(key: str, book: str, at: datetime, kind: str, page: int | None = None) -> dict[str, Any]:
    made: dict[str, Any] = {
        "id": str(uuid.uuid5(EVENT_IDS, f"{key}:{kind}:{page}")),
        "type": kind,
        "book_id": book,
        "at": at.isoformat(),
    }
    if kind != "open":
        made |= {"page": page, "total_pages": PAGES_READ}
    return made
