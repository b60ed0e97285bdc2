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
from pathlib import Path

from services.content.reading_levels import estimate_reading_level

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
