"""Reading-level thresholds fitted on our reviewers' confirmed levels (#40).

At approval a reviewer confirms or corrects a submission's level (reviews.py keeps
it with who and when), beside the difficulty score its manuscript's analysis
measured. For each language with at least MIN_CONFIRMED of them, `fit` finds the
three scores where early, transitional and fluent begin that agree with the most
reviewers: the scores sorted, the best split of them into four runs in level order
(dynamic programming, linear in the samples for each level), each threshold
halfway between the two scores it falls between. A language with fewer confirmed
levels, or with no row, keeps the word-count rule (reading_levels.py).

`agreement` is what `stories bench reading-levels` reports: exact and adjacent
accuracy (within one level), cross-validated over FOLDS folds so a language's
thresholds are judged on levels they were not fitted on, beside the word-count
rule on the same levels.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.content.repository import ContentRepository

from services.content.reading_levels import LEVELS, WORDS_PER_PAGE_RULE, level_by_thresholds

MIN_CONFIRMED = 20
FOLDS = 5
# Beyond the lowest or highest score seen, a threshold with no score on one side
# sits this far out (an empty level at either end of the scale).
EDGE = 1.0


@dataclass(frozen=True)
class Confirmed:
    """One reviewer's confirmed level, with what the analysis measured."""

    language: str
    score: float
    words_per_page: float
    level: str


def fit(samples: Sequence[Confirmed]) -> list[float]:
    """The three thresholds that agree with the most confirmed levels."""
    if not samples:
        raise ValueError("no confirmed levels to fit on")
    ordered = sorted(samples, key=lambda s: s.score)
    n = len(ordered)
    # before[k][i]: how many of the first i samples reviewers put at level k.
    before = [[0] * (n + 1) for _ in LEVELS]
    for i, sample in enumerate(ordered):
        for k, level in enumerate(LEVELS):
            before[k][i + 1] = before[k][i] + (sample.level == level)
    # A split may fall only between two different scores (or at either end).
    cuts = [i for i in range(n + 1) if i in (0, n) or ordered[i - 1].score < ordered[i].score]
    # wrong[k][j]: the fewest disagreements with the first j samples in levels 0..k;
    # start[k][j]: where level k's run begins in that best split.
    wrong = [[0] * (n + 1) for _ in LEVELS]
    start = [[0] * (n + 1) for _ in LEVELS]
    for j in cuts:
        wrong[0][j] = j - before[0][j]
    for k in range(1, len(LEVELS)):
        best, best_at = None, 0
        for j in cuts:  # in order: the best start at or before j, kept as we go
            candidate = wrong[k - 1][j] - (j - before[k][j])
            if best is None or candidate < best:
                best, best_at = candidate, j
            wrong[k][j] = best + (j - before[k][j])
            start[k][j] = best_at
    thresholds, j = [], n
    for k in range(len(LEVELS) - 1, 0, -1):
        j = start[k][j]
        thresholds.append(_between(ordered, j))
    return sorted(thresholds)


def _between(ordered: Sequence[Confirmed], i: int) -> float:
    if i == 0:
        return round(ordered[0].score - EDGE, 3)
    if i == len(ordered):
        return round(ordered[-1].score + EDGE, 3)
    return round((ordered[i - 1].score + ordered[i].score) / 2, 3)


def by_word_count(sample: Confirmed) -> str:
    for level, most in WORDS_PER_PAGE_RULE:
        if sample.words_per_page <= most:
            return level
    return "fluent"


@dataclass(frozen=True)
class Agreement:
    samples: int
    exact: float
    adjacent: float


def agreement(samples: Sequence[Confirmed], predict: Callable[[Confirmed], str]) -> Agreement:
    if not samples:
        return Agreement(0, 0.0, 0.0)
    steps = [abs(LEVELS.index(predict(s)) - LEVELS.index(s.level)) for s in samples]
    return Agreement(
        len(samples),
        round(sum(1 for d in steps if d == 0) / len(steps), 3),
        round(sum(1 for d in steps if d <= 1) / len(steps), 3),
    )


def cross_validated(samples: Sequence[Confirmed], folds: int = FOLDS, seed: int = 40) -> Agreement:
    """Fitted thresholds judged on the levels each fold held out."""
    shuffled = list(samples)
    random.Random(seed).shuffle(shuffled)  # noqa: S311 - a split into folds, not a secret
    predicted: dict[int, str] = {}
    for fold in range(folds):
        fitted = fit([s for i, s in enumerate(shuffled) if i % folds != fold])
        for i in range(fold, len(shuffled), folds):
            predicted[i] = level_by_thresholds(shuffled[i].score, fitted)
    order = {id(s): i for i, s in enumerate(shuffled)}
    return agreement(shuffled, lambda s: predicted[order[id(s)]])


def confirmed(rows: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, list[Confirmed]]:
    """Confirmed levels with a measured score, by the language it was measured in."""
    by_language: dict[str, list[Confirmed]] = {}
    for level, analysis in rows:
        score = analysis.get("score")
        if score is None or level not in LEVELS:
            continue  # a scan: nothing measured to learn from
        language = str(analysis.get("measured_in") or "und")
        features = analysis.get("features") or {}
        by_language.setdefault(language, []).append(
            Confirmed(language, float(score), float(features.get("words_per_page") or 0), level)
        )
    return by_language


async def refit(
    repository: ContentRepository, *, min_confirmed: int = MIN_CONFIRMED, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Each language's thresholds fitted afresh on every confirmed level (stored
    unless `dry_run`), with how well the thresholds and the rule agree with them."""
    report: list[dict[str, Any]] = []
    for language, samples in sorted(confirmed(await repository.confirmed_levels()).items()):
        rule = agreement(samples, by_word_count)
        line: dict[str, Any] = {
            "language": language,
            "confirmed": len(samples),
            "word_count_rule": {"exact": rule.exact, "adjacent": rule.adjacent},
        }
        if len(samples) < max(min_confirmed, FOLDS):
            line["thresholds"] = None
            line["kept"] = (
                f"the word-count rule: {len(samples)} confirmed levels, a fit needs {min_confirmed}"
            )
        else:
            thresholds = fit(samples)
            judged = cross_validated(samples)
            line["thresholds"] = thresholds
            line["cross_validated"] = {"exact": judged.exact, "adjacent": judged.adjacent}
            line["stored"] = not dry_run
            if not dry_run:
                await repository.store_thresholds(language, thresholds, len(samples))
        report.append(line)
    return report
