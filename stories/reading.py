"""`stories reading-level`: the reading-level estimate of plain text files, for
authors, tools and checks; the estimator content runs on every manuscript.

A file's pages are separated by form feeds (\\f, as `pdftotext` writes them); a file
without any is read a paragraph (text between blank lines) to a page.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from services.content.reading_levels import estimate_reading_level

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

_BLANK_LINES = re.compile(r"\n\s*\n")
# Bigger than any book we take: a file past it is not a story (and not read whole).
MOST_BYTES = 20 * 1024 * 1024


def pages_of(text: str) -> list[str]:
    if "\f" in text:
        return text.split("\f")
    return [p for p in _BLANK_LINES.split(text) if p.strip()]


def reading_level(args: argparse.Namespace) -> int:
    failed = 0
    for name in args.files:
        path = Path(name)
        try:
            with path.open("rb") as file:
                raw = file.read(MOST_BYTES + 1)
            if len(raw) > MOST_BYTES:
                raise ValueError(f"larger than {MOST_BYTES // (1024 * 1024)} MiB")
            text = raw.decode("utf-8-sig")
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
            print(f"stories reading-level: {name}: {reason}", file=sys.stderr)
            failed = 1
            continue
        estimate = estimate_reading_level(pages_of(text), args.language)
        found = estimate.as_json()
        line = {
            "file": name,
            "language": found["language"],
            "level": found["level"],
            "score": found["score"],
            "features": found["features"],
            "method": found["method"],
            "detected": found["detected"],
        }
        try:
            print(json.dumps(line, ensure_ascii=False), flush=True)
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so exit's flush is quiet
            return failed
    return failed


def reading_levels(args: argparse.Namespace) -> int:
    """`stories reading-levels fit`: each language's thresholds refitted from the
    levels reviewers confirmed (services/content/calibration.py), against the
    content database its settings name (CONTENT_DATABASE_URL, as `stories migrate`)."""
    import asyncio

    try:
        report = asyncio.run(_refit(args.min_confirmed, args.dry_run))
    except OSError as exc:
        print(f"stories reading-levels: {exc}", file=sys.stderr)
        return 1
    for line in report:
        print(json.dumps(line, ensure_ascii=False))
    if not report:
        print(
            "stories reading-levels: no confirmed levels yet (a reviewer confirms one by "
            "approving with reading_level): every language keeps the word-count rule",
            file=sys.stderr,
        )
    return 0


async def _refit(min_confirmed: int, dry_run: bool) -> list[dict[str, object]]:
    from services.content.calibration import refit
    from services.content.repository import ContentRepository

    async with content_session() as session:
        return await refit(ContentRepository(session), min_confirmed=min_confirmed, dry_run=dry_run)


@asynccontextmanager
async def content_session() -> AsyncIterator[AsyncSession]:
    """One transaction on the content database its settings name; an embedded
    run's SQLite file must exist (it is not made empty here)."""
    from sqlalchemy.engine import make_url

    from services.content.settings import ContentSettings
    from shared.clients.db import create_engine, create_session_factory, is_postgres, unit_of_work
    from shared.settings import DATABASE_SETTINGS, checking_only

    with checking_only(*DATABASE_SETTINGS):
        settings = ContentSettings()
    database = make_url(settings.database_url).database
    missing = database and not Path(database).exists()  # noqa: ASYNC240 - one stat, once
    if not is_postgres(settings.database_url) and missing:
        raise OSError(
            f"no content database at {database}: start the platform (`stories up`) or set "
            "CONTENT_DATABASE_URL"
        )
    engine = create_engine(settings.database_url, schema=settings.database_schema, pool_size=1)
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            yield session
    finally:
        await engine.dispose()
