"""`stories bench reading-levels` (#40): how well the reading-level estimate agrees
with our reviewers, per language: cross-validated exact and adjacent accuracy of
thresholds fitted on their confirmed levels (services/content/calibration.py),
beside the word-count rule on the same levels (the baseline).

The confirmed levels are read from the content database the settings name
(CONTENT_DATABASE_URL and CONTENT_DATABASE_SCHEMA, as `stories migrate` reads
them). A language with fewer than MIN_CONFIRMED is reported as such, unfitted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from services.content.calibration import (
    MIN_CONFIRMED,
    agreement,
    by_word_count,
    confirmed,
    cross_validated,
)
from stories.bench.harness import Figure


def bench_reading_levels(rows: Sequence[tuple[str, dict[str, Any]]] | None = None) -> list[Figure]:
    if rows is None:
        try:
            rows = asyncio.run(_confirmed_rows())
        except (SQLAlchemyError, OSError) as exc:
            print(f"reading-levels: the content database cannot be read: {exc!r}")
            return []
    found = confirmed(rows)
    figures: list[Figure] = []
    for language, samples in sorted(found.items()):
        if len(samples) < MIN_CONFIRMED:
            print(
                f"reading-levels: {language}: {len(samples)} confirmed levels, "
                f"fewer than the {MIN_CONFIRMED} a fit needs: not measured"
            )
            continue
        rule, fitted = agreement(samples, by_word_count), cross_validated(samples)
        for name, rule_share, fitted_share in (
            ("exact", rule.exact, fitted.exact),
            ("within one level", rule.adjacent, fitted.adjacent),
        ):
            baseline = f"{language}: word-count rule, {name} ({len(samples)} confirmed)"
            figures.append(Figure("levels", baseline, rule_share * 100, "%"))
            figures.append(
                Figure(
                    "levels",
                    f"{language}: fitted thresholds, 5-fold, {name}",
                    fitted_share * 100,
                    "%",
                    baseline_of=baseline,
                )
            )
    if not found:
        print(
            "reading-levels: no confirmed levels in the content database yet (a reviewer "
            "confirms one by approving with reading_level)"
        )
    return figures


async def _confirmed_rows() -> list[tuple[str, dict[str, Any]]]:
    from services.content.repository import ContentRepository
    from stories.reading import content_session

    async with content_session() as session:
        return await ContentRepository(session).confirmed_levels()
