"""#40's done-when, on the demo library's own texts (stories/demo/texts.py), as
content's analysis reads them at submit: every translation in its own language,
every adaptation easier than its original, nothing flagged, and no two families'
stories alike enough to be near-duplicates. (`tests/platform/test_demo.py` checks
the same through the running platform.)"""

from __future__ import annotations

import itertools
from typing import Any

from services.content.duplicates import SAME_TEXT
from services.content.manuscript_analysis import analyse_pages
from stories.demo.library import stories


def test_the_demo_library_reads_as_its_languages_and_levels() -> None:
    analysed: dict[tuple[int, str], dict[str, Any]] = {}
    for story in stories():
        analysis = analyse_pages(story.page_texts, story.language)
        assert analysis["detected_language"]["language"] == story.language, story.title
        assert analysis["estimated_level"] == story.reading_level, story.title
        assert [f for f in analysis["findings"] if f["severity"] != "info"] == [], story.title
        analysed[(story.number, story.derivation if story.adaptation else story.language)] = (
            analysis
        )
    adapted = [number for number, kind in analysed if kind == "adaptation"]
    assert len(adapted) == 5
    for number in adapted:
        original = next(s for s in stories() if s.number == number and s.source is None)
        easier = analysed[(number, "adaptation")]["score"]
        assert easier < analysed[(number, original.language)]["score"]
    # Families apart: the exact Jaccard similarity of their shingles, in each
    # language (adaptations with the rest), well under what duplicates.py calls
    # the same text.
    by_language: dict[str, list[tuple[int, set[int]]]] = {}
    for story in stories():
        key = (story.number, "adaptation" if story.adaptation else story.language)
        by_language.setdefault(story.language, []).append(
            (story.number, set(analysed[key]["shingles"]))
        )
    for language, books in by_language.items():
        for (one, a), (other, b) in itertools.combinations(books, 2):
            if one != other:  # a family's own versions may be alike
                assert len(a & b) / len(a | b) < SAME_TEXT - 0.15, (language, one, other)
