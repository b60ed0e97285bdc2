"""A learner's month of reading, made up the same way every run: the same learner
and day always give the same events, with the same ids, which delivery takes once."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from stories.demo.library import DAYS, EVENT_IDS


def reading_history(index: int, shelf: list[str], now: datetime) -> list[dict[str, Any]]:
    """One learner's month: on most school days a book or two, read at a time of
    day of their own, page by page, now and then to the end. The same learner and
    day always give the same events, with the same ids."""
    rng = random.Random(index)
    events: list[dict[str, Any]] = []
    habit = rng.choice((8, 10, 13, 16, 19))  # the hour they usually read
    for days_ago in range(DAYS - 1, -1, -1):
        day = (now - timedelta(days=days_ago)).replace(minute=0, second=0, microsecond=0)
        weekend = day.weekday() >= 5
        # Busier towards today, as a library newly opened to a class is.
        if rng.random() > (0.35 if weekend else 0.55 + 0.3 * (DAYS - days_ago) / DAYS):
            continue
        for session in range(rng.choice((1, 1, 2))):
            book = rng.choice(shelf)
            at = day.replace(hour=(habit + 3 * session + rng.randrange(-1, 2)) % 24)
            if at >= now - timedelta(minutes=5):
                continue  # a device's clock is never ahead of the platform's
            read_to = rng.randrange(2, PAGES_READ + 1)
            key = f"{index}:{book}:{days_ago}:{session}"
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
