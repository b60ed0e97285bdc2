"""#40: reviewers confirm or correct a submission's level at approval; each
language's thresholds are refitted from those levels (`stories reading-levels
fit`); `stories bench reading-levels` reports how well they agree."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest

from services.content.calibration import (
    MIN_CONFIRMED,
    Confirmed,
    agreement,
    by_word_count,
    confirmed,
    cross_validated,
    fit,
    refit,
)
from services.content.manuscript_analysis import analyse_pages
from services.content.models import Submission
from services.content.reading_levels import LEVELS, level_by_thresholds
from services.content.repository import ContentRepository
from shared.contracts.roles import Role
from stories.bench.reading_levels import bench_reading_levels
from stories.samples import text_pdf
from tests.content.test_reading_levels import FIRST_WORDS
from tests.harness.content import ContentHarness

SWAHILI = (
    "mtoto", "anacheza", "na", "mbuzi", "wake", "karibu", "na", "mto", "kila", "asubuhi",
    "kabla", "ya", "shule", "mama", "anapika", "chakula", "kitamu", "jikoni", "na", "baba",
    "analima", "shamba", "la", "mahindi", "jua", "linawaka",
)  # fmt: skip


def swahili_book(words_per_page: int, rng: random.Random, pages: int = 8) -> list[str]:
    """A generated Swahili book with this many words on each page, in sentences of
    about six words."""
    out = []
    for _ in range(pages):
        words = [rng.choice(SWAHILI) for _ in range(words_per_page)]
        sentences = [" ".join(words[i : i + 6]).capitalize() + "." for i in range(0, len(words), 6)]
        out.append(" ".join(sentences))
    return out


def strict_reviewers(words_per_page: float) -> str:
    """Our Swahili reviewers, stricter than the word-count rule (10/25/60): a page
    of more than 5 words is early to them, more than 15 transitional, 40 fluent."""
    return LEVELS[sum(words_per_page > most for most in (5, 15, 40))]


def test_the_fit_finds_the_thresholds_reviewers_keep_to() -> None:
    rng = random.Random(40)
    hidden = [1.0, 2.5, 4.0]
    samples = [
        Confirmed("xx", score, 0.0, level_by_thresholds(score + rng.gauss(0, 0.1), hidden))
        for score in (rng.uniform(0, 5) for _ in range(300))
    ]
    fitted = fit(samples)
    assert fitted == sorted(fitted)
    assert all(abs(f - h) < 0.25 for f, h in zip(fitted, hidden, strict=True)), fitted
    judged = cross_validated(samples)
    assert judged.exact > 0.85
    assert judged.adjacent == 1.0


def test_a_fit_on_one_level_or_ties_keeps_each_level_where_reviewers_put_it() -> None:
    same = [Confirmed("xx", 3.0, 0.0, "early")] * 5
    assert level_by_thresholds(3.0, fit(same)) == "early"
    tied = [Confirmed("xx", 3.0, 0.0, "early"), Confirmed("xx", 3.0, 0.0, "fluent")] * 3
    thresholds = fit(tied)  # one score cannot be split: one of them, not a fourth level
    assert level_by_thresholds(3.0, thresholds) in ("early", "fluent")
    with pytest.raises(ValueError, match="no confirmed levels"):
        fit([])


def test_agreement_counts_exact_and_within_one_level() -> None:
    samples = [
        Confirmed("xx", 0, 5, "emergent"),  # the rule: emergent (exact)
        Confirmed("xx", 0, 20, "emergent"),  # the rule: early (adjacent)
        Confirmed("xx", 0, 100, "emergent"),  # the rule: fluent (three away)
        Confirmed("xx", 0, 50, "transitional"),  # exact
    ]
    found = agreement(samples, by_word_count)
    assert (found.samples, found.exact, found.adjacent) == (4, 0.5, 0.75)


async def seed_confirmed(content: ContentHarness, count: int) -> None:
    """`count` approved Swahili submissions, each analysed as submit analyses it
    and confirmed by the strict reviewers (rows written directly: the API's own
    path is the next test's)."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    async with content.resources.session_factory() as session:
        for i in range(count):
            words = [2, 4, 8, 12, 20, 30, 45, 70][i % 8] + rng.randint(0, 2)
            analysis = analyse_pages(swahili_book(words, rng), "sw")
            session.add(
                Submission(
                    id=uuid.uuid4(), author_id=uuid.uuid4(), title=f"Hadithi {i}",
                    summary="Hadithi fupi.", language="sw", age_min=4, age_max=8,
                    category="animals", reading_level="early", status="APPROVED", version=3,
                    analysis=analysis,
                    confirmed_level=strict_reviewers(analysis["features"]["words_per_page"]),
                    level_confirmed_by=uuid.uuid4(), level_confirmed_at=now,
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
        await session.commit()


async def test_a_reviewer_confirms_or_corrects_the_level_at_approval(
    content_on_both: ContentHarness,
) -> None:
    content = content_on_both
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    # In Portuguese: this module's Swahili levels are the fit's (the harness is shared).
    pdf = text_pdf(FIRST_WORDS["pt"] * 2)
    first = await content.submitted(author, pdf=pdf, language="pt", reading_level="early")
    corrected = await content.review(reviewer, first, reading_level="emergent")
    assert corrected.status_code == 200, corrected.text
    body = corrected.json()
    assert (body["reading_level"], body["confirmed_level"]) == ("emergent", "emergent")
    assert body["level_confirmed_by"] == str(reviewer.id)
    assert body["level_confirmed_at"] is not None
    history = await content.http.get(
        f"/v1/submissions/{first['id']}/history", headers=reviewer.headers
    )
    assert history.json()[-1]["notes"] == "Reading level corrected from early to emergent."
    # Confirming the declared level keeps it, and says so.
    second = await content.submitted(author, pdf=pdf, language="pt", reading_level="emergent")
    kept = await content.review(reviewer, second, notes="Lovely.", reading_level="emergent")
    assert kept.json()["confirmed_level"] == "emergent"
    history = await content.http.get(
        f"/v1/submissions/{second['id']}/history", headers=reviewer.headers
    )
    assert history.json()[-1]["notes"] == "Reading level confirmed: emergent. Lovely."
    # A level is confirmed by an approval only; an approval without one confirms nothing.
    third = await content.submitted(author, pdf=pdf, language="pt")
    refused = await content.review(
        reviewer, third, decision="request_changes", notes="More pages.", reading_level="early"
    )
    assert refused.status_code == 422, refused.text
    now = await content.http.get(f"/v1/submissions/{third['id']}", headers=reviewer.headers)
    plain = await content.review(reviewer, now.json())
    assert plain.status_code == 200, plain.text
    assert plain.json()["confirmed_level"] is None
    # The book made from the corrected one carries the confirmed level and the estimate.
    manager = await content.account(Role.BOOK_MANAGER)
    book = await content.book(manager, body)
    assert (book["reading_level"], book["estimated_level"]) == ("emergent", "emergent")


async def test_thresholds_refitted_from_confirmed_levels_level_the_next_submission(
    content_on_both: ContentHarness,
) -> None:
    content = content_on_both
    async with content.resources.session_factory() as session:
        before = len(confirmed(await ContentRepository(session).confirmed_levels()).get("sw", []))
    await seed_confirmed(content, MIN_CONFIRMED - before - 1)
    async with content.resources.session_factory() as session:
        report = {line["language"]: line for line in await refit(ContentRepository(session))}
        await session.commit()
    few = report["sw"]
    assert few["thresholds"] is None
    assert f"{MIN_CONFIRMED - 1} confirmed levels, a fit needs 20" in few["kept"]
    await seed_confirmed(content, 41 - MIN_CONFIRMED)
    async with content.resources.session_factory() as session:
        report = {line["language"]: line for line in await refit(ContentRepository(session))}
        await session.commit()
        line = report["sw"]
        fitted = await ContentRepository(session).fitted_thresholds()
    assert fitted["sw"] == line["thresholds"]
    assert line["confirmed"] == 40
    assert "pt" not in fitted  # too few Portuguese levels: still the rule
    # The reviewers are stricter than the rule: the fit agrees with them better.
    assert line["cross_validated"]["exact"] > line["word_count_rule"]["exact"]
    assert line["cross_validated"]["exact"] >= 0.9
    # A new Swahili book of 8 words a page: emergent by the rule, early to these reviewers.
    author = await content.account(Role.VOLUNTEER)
    pdf = text_pdf(swahili_book(8, random.Random(1), pages=4))
    submitted = await content.submitted(author, pdf=pdf, language="sw", reading_level="early")
    analysis = submitted["analysis"]
    assert (analysis["method"], analysis["estimated_level"]) == ("fitted thresholds", "early")
    assert "level-differs" not in [f["kind"] for f in analysis["findings"]]
    # The benchmark reports the same agreement, beside the rule.
    async with content.resources.session_factory() as session:
        rows = await ContentRepository(session).confirmed_levels()
    figures = {f.row: f for f in bench_reading_levels(rows)}
    rule = figures["sw: word-count rule, exact (40 confirmed)"]
    by_fit = figures["sw: fitted thresholds, 5-fold, exact"]
    assert by_fit.baseline_of == rule.row
    assert by_fit.throughput == pytest.approx(line["cross_validated"]["exact"] * 100)
    assert rule.throughput == pytest.approx(line["word_count_rule"]["exact"] * 100)


async def test_the_fit_command_reads_the_database_its_settings_name(
    content_on_both: ContentHarness,
) -> None:
    content = content_on_both
    await seed_confirmed(content, MIN_CONFIRMED)
    async with content.resources.session_factory() as session:
        stored = await ContentRepository(session).fitted_thresholds()
        count = len(confirmed(await ContentRepository(session).confirmed_levels())["sw"])
    env = {
        **os.environ,
        "CONTENT_DATABASE_URL": content.settings.database_url,
        "CONTENT_DATABASE_SCHEMA": content.settings.database_schema,
    }
    done = subprocess.run(
        [sys.executable, "-m", "stories.cli", "reading-levels", "fit", "--dry-run"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = {line["language"]: line for line in map(json.loads, done.stdout.splitlines())}
    assert (lines["sw"]["confirmed"], lines["sw"]["stored"]) == (count, False)
    assert lines["sw"]["thresholds"] is not None
    async with content.resources.session_factory() as session:
        assert await ContentRepository(session).fitted_thresholds() == stored  # a dry run
