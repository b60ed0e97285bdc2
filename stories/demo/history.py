"""A learner's month of reading, made up the same way every run: the same learner
and date always give the same events, with the same ids, which delivery takes once."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from stories.demo.library import DAYS, EVENT_IDS


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
