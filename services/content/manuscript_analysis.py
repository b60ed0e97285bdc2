"""What a careful first reader tells a reviewer about a manuscript (#40).

Made at submit, in the deep check's child (services/content/pdfcheck.py), from
each page's text layer, and stored on the submission as `measured`: the language
detected, the reading-level estimate and its features. What depends on what the
author declares (the language, the level) is compared when the submission is
read (`findings`), so an edit of the metadata after submit is compared afresh
and the stored analysis never goes stale.

Findings are reasons for a human, never a silent refusal: each has a kind, a
severity, a page (where it has one) and a short excerpt.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from services.content.offensive_words import offensive_word_findings
from services.content.personal_data import personal_data_findings
from services.content.reading_levels import (
    estimate_reading_level,
    level_by_thresholds,
    primary_language,
    words_of,
)

# Bumped when what is stored changes shape; a reader of an older one knows it.
ANALYSIS_VERSION = 1
# A page's text is read up to this many characters (a picture book's page holds a
# few hundred; a page past this is not prose for children).
MAX_TEXT_PER_PAGE = 20_000
# Word shingles for near-duplicates (services/content/duplicates.py): three words,
# hashed to 32 bits here, the smallest MAX_SHINGLES kept (a bottom-k sample, the
# same for two books that share them). The service turns them into a MinHash.
SHINGLE_WORDS = 3
MAX_SHINGLES = 50_000
# A detected language this sure (and CLD2 calling it reliable) that differs from
# the declared one is a finding.
MISMATCH_CONFIDENCE = 0.6

Severity = Literal["info", "warning", "severe"]


def analyse_pages(pages: Sequence[str], declared_language: str | None) -> dict[str, Any]:
    """The stored analysis of a manuscript's pages (JSON-ready)."""
    pages = [page[:MAX_TEXT_PER_PAGE] for page in pages]
    estimate = estimate_reading_level(pages, declared_language).as_json()
    detected = estimate["detected"]
    # The text is checked in the languages it is in: the declared one, and the one
    # detected where CLD2 is sure of it (a Portuguese book declared "en").
    languages = [estimate["language"]]
    if detected["reliable"] and detected["language"]:
        languages.append(detected["language"])
    offensive, offensive_checked = offensive_word_findings(pages, languages)
    return {
        # Taken out by the service before the analysis is stored (duplicates.py).
        "shingles": shingle_hashes(pages),
        "version": ANALYSIS_VERSION,
        "detected_language": estimate["detected"],
        "measured_in": estimate["language"],
        "estimated_level": estimate["level"],
        "score": estimate["score"],
        "method": estimate["method"],
        "features": estimate["features"],
        # Found in the text itself, whatever is declared; excerpts already masked.
        "findings": personal_data_findings(pages) + offensive,
        # What each check covered, and what it could not (a language with no list).
        "checks": {
            "personal_data": {"checked": ["any language"], "unavailable": {}},
            "offensive_words": offensive_checked,
        },
    }


def shingle_hashes(pages: Sequence[str]) -> list[int]:
    """The distinct three-word shingles of the book's text, as 32-bit hashes."""
    words = [w.casefold() for page in pages for w in words_of(page)]
    found = {
        zlib.crc32(" ".join(words[i : i + SHINGLE_WORDS]).encode())
        for i in range(len(words) - SHINGLE_WORDS + 1)
    }
    return sorted(found)[:MAX_SHINGLES]


def levelled(
    measured: dict[str, Any] | None, fitted: Mapping[str, Sequence[float]]
) -> dict[str, Any] | None:
    """The analysis levelled by its language's fitted thresholds, where it has
    them (services/content/calibration.py); else as the child measured it."""
    thresholds = fitted.get(str((measured or {}).get("measured_in")))
    if measured is None or measured.get("score") is None or thresholds is None:
        return measured
    level = level_by_thresholds(float(measured["score"]), thresholds)
    return {**measured, "estimated_level": level, "method": "fitted thresholds"}


def severe_findings(measured: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What holds a submission for a CONTENT_ADMIN: found in the text, severe."""
    return [f for f in (measured or {}).get("findings") or [] if f.get("severity") == "severe"]


def flags(measured: dict[str, Any] | None, submission: Any) -> list[str]:
    """What a reviewer must look closer at: the kinds of its warnings and severe
    findings as the submission is declared (its `language` and `reading_level`),
    severe first. Codes only: what submission.submitted carries."""
    if measured is None:
        return []
    found = findings(measured, submission.language, submission.reading_level)
    kinds = [f["kind"] for f in found if f.get("severity") in ("severe", "warning")]
    return list(dict.fromkeys(kinds))


def hold_note(severe: Sequence[dict[str, Any]]) -> str:
    """The history's reason for a hold: kinds and pages only, never an excerpt."""
    where = ", ".join(
        f"{f['kind']} on page {f['page']}" if f.get("page") else str(f["kind"]) for f in severe
    )
    return f"Held until a CONTENT_ADMIN clears it: {where}."


def finding(
    kind: str, severity: Severity, detail: str, page: int | None = None, excerpt: str | None = None
) -> dict[str, Any]:
    return {"kind": kind, "severity": severity, "page": page, "excerpt": excerpt, "detail": detail}


def findings(
    measured: dict[str, Any], declared_language: str, declared_level: str
) -> list[dict[str, Any]]:
    """What the stored analysis says about the manuscript as now declared, then
    what it found in the text; the most severe first."""
    found: list[dict[str, Any]] = []
    detected = measured.get("detected_language") or {}
    if measured.get("method") == "no text":
        found.append(
            finding(
                "no-text",
                "info",
                "The PDF has no text layer (a scan?): no language or reading level could be "
                "read from it.",
            )
        )
    elif (
        detected.get("language")
        and detected.get("reliable")
        and float(detected.get("confidence", 0)) >= MISMATCH_CONFIDENCE
        and detected["language"] != primary_language(declared_language)
    ):
        found.append(
            finding(
                "language-mismatch",
                "warning",
                f"Declared {declared_language!r}, but the text reads as {detected['language']!r} "
                f"({float(detected['confidence']):.0%} of it).",
            )
        )
    estimated = measured.get("estimated_level")
    if estimated and estimated != declared_level:
        found.append(
            finding(
                "level-differs",
                "info",
                f"Declared {declared_level!r}; the text reads as {estimated!r} "
                f"(by the {measured.get('method')}).",
            )
        )
    found += list(measured.get("findings") or [])
    order = {"severe": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda f: order.get(str(f.get("severity")), 3))
