"""`stories recommend batch`: the recommender (#42) on any reading log, for offline
evaluation and for tools: the same code the service ranks with
(services/access/recommender.py), trained on the file's reads alone.

The interactions are a CSV of `reader,book,at` (any ids; `at` is RFC 3339, or
seconds since the epoch), with or without that header line; a fourth column
`completed` (true/false) is optional and defaults to true, as a log of reads
usually means reads to the end. The readers file names whom to rank for, one
id a line (a `reader` header line is skipped). Each gets one JSON line, the top
k best first, leaving out what they read in the file. A log has no facts of its
books, so only co-reading and popularity rank: no language or level rule.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from services.access.recommender import Learner, Read, fit, recommend

HEADER = ["reader", "book", "at"]
TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


class MalformedFileError(ValueError):
    pass


def parse_moment(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)  # ValueError for anything else
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def read_interactions(path: Path) -> list[Read]:
    """Every read of the file; MalformedFileError names the first bad line."""
    reads: list[Read] = []
    with path.open(newline="", encoding="utf-8-sig") as file:
        for number, row in enumerate(csv.reader(file), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if number == 1 and [c.strip().lower() for c in row[:3]] == HEADER:
                continue
            if len(row) not in (3, 4):
                raise MalformedFileError(
                    f"{path}:{number}: expected reader,book,at[,completed], got {len(row)} fields"
                )
            reader, book, at = (cell.strip() for cell in row[:3])
            if not reader or not book:
                raise MalformedFileError(f"{path}:{number}: an empty reader or book id")
            try:
                moment = parse_moment(at)
            except ValueError:
                raise MalformedFileError(
                    f"{path}:{number}: {at!r} is neither RFC 3339 nor seconds since the epoch"
                ) from None
            completed = True
            if len(row) == 4:
                flag = row[3].strip().lower()
                if flag not in TRUE | FALSE:
                    raise MalformedFileError(f"{path}:{number}: completed must be true or false")
                completed = flag in TRUE
            reads.append(Read(reader, book, moment, completed))
    return reads


def read_readers(path: Path) -> list[str]:
    readers: list[str] = []
    with path.open(encoding="utf-8-sig") as file:
        for number, line in enumerate(file, start=1):
            reader = line.strip()
            if not reader or (number == 1 and reader.lower() == "reader"):
                continue
            if "," in reader:
                raise MalformedFileError(f"{path}:{number}: one reader id a line, no commas")
            readers.append(reader)
    return readers


def ranked(reads: list[Read], readers: list[str], k: int) -> Iterator[dict[str, object]]:
    now = max((r.at for r in reads), default=0.0)
    model = fit(reads, now=now)
    history: dict[str, list[Read]] = {}
    for read in reads:
        history.setdefault(read.reader, []).append(read)
    books = sorted({r.book for r in reads})
    for reader in readers:
        picks = recommend(
            model, Learner(history.get(reader, [])), catalog={}, readable=books, now=now, limit=k
        ).picks
        yield {"reader": reader, "books": [pick.book for pick in picks]}


def batch(args: argparse.Namespace) -> int:
    if args.k < 1:
        print("stories recommend batch: -k must be at least 1", file=sys.stderr)
        return 2
    try:
        reads = read_interactions(Path(args.interactions))
        readers = read_readers(Path(args.readers))
    except (MalformedFileError, OSError, UnicodeDecodeError) as exc:
        print(f"stories recommend batch: {exc}", file=sys.stderr)
        return 2
    for line in ranked(reads, readers, args.k):
        print(json.dumps(line, ensure_ascii=False))
    return 0
