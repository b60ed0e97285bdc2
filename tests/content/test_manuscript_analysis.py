"""#40: every manuscript is read at submit, inside the deep check's child, and the
reviewer sees what a first reader noticed on the submission itself."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from services.content.manuscript_analysis import findings
from services.content.models import Submission
from services.content.pdfcheck import Limits, check_manuscript_file
from shared.contracts.roles import Role
from shared.service.logging import configure_logging
from stories.samples import text_pdf
from tests.content.test_reading_levels import FIRST_WORDS, FLUENT
from tests.harness.content import ContentHarness
from tests.support import assert_problem

LIMITS = Limits(max_pages=300, cpu_seconds=30, memory_bytes=1024**3, wall_seconds=60)


def kinds(analysis: dict[str, Any]) -> list[str]:
    return [f["kind"] for f in analysis["findings"]]


async def test_the_check_child_reads_each_page_and_a_300_page_book_within_its_limits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "book.pdf"
    path.write_bytes(text_pdf([FLUENT["fr"] * 2] * 300))
    verdict = await check_manuscript_file(str(path), LIMITS, "fr")
    assert (verdict.ok, verdict.pages) == (True, 300)
    assert verdict.analysis is not None
    assert verdict.analysis["features"]["pages"] == 300
    assert verdict.analysis["features"]["pages_with_text"] == 300
    assert verdict.analysis["detected_language"]["language"] == "fr"
    assert verdict.analysis["estimated_level"] == "fluent"
    # Accented letters come back as written (WinAnsi): "où", "déborda".
    assert verdict.analysis["features"]["rare_word_share"] < 0.2


async def test_a_submission_carries_its_analysis_and_its_findings(
    content_on_both: ContentHarness,
) -> None:
    content = content_on_both
    author = await content.account(Role.VOLUNTEER)
    # Portuguese first words, declared English and fluent: two findings.
    pdf = text_pdf(FIRST_WORDS["pt"] * 2)
    submitted = await content.submitted(author, pdf=pdf, language="en", reading_level="fluent")
    analysis = submitted["analysis"]
    assert analysis["detected_language"]["language"] == "pt"
    assert analysis["measured_in"] == "en"
    assert analysis["estimated_level"] == "emergent"
    assert analysis["method"] == "word-count rule"
    assert kinds(analysis) == ["language-mismatch", "level-differs"]
    assert analysis["findings"][0]["severity"] == "warning"
    # The reviewer sees the same on the submission and in the queue.
    reviewer = await content.account(Role.STORY_MANAGER)
    seen = await content.http.get(f"/v1/submissions/{submitted['id']}", headers=reviewer.headers)
    assert seen.json()["analysis"] == analysis
    queue = await content.http.get("/v1/submissions", headers=reviewer.headers)
    (listed,) = [s for s in queue.json()["items"] if s["id"] == submitted["id"]]
    assert listed["analysis"] == analysis


async def test_a_manuscript_as_declared_has_no_findings(
    content_on_both: ContentHarness,
) -> None:
    content = content_on_both
    author = await content.account(Role.VOLUNTEER)
    pdf = text_pdf([FLUENT["es"]] * 3)
    submitted = await content.submitted(
        author, pdf=pdf, language="es", reading_level="fluent"
    )  # fmt: skip
    analysis = submitted["analysis"]
    assert (analysis["detected_language"]["language"], analysis["estimated_level"]) == (
        "es", "fluent"
    )  # fmt: skip
    assert analysis["findings"] == []
    assert analysis["features"]["unavailable"] == {}


async def test_a_scanned_book_is_analysed_as_having_no_text(
    content_on_both: ContentHarness,
) -> None:
    content = content_on_both
    author = await content.account(Role.VOLUNTEER)
    submitted = await content.submitted(author, pdf=text_pdf(["", "", ""]))
    analysis = submitted["analysis"]
    assert (analysis["estimated_level"], analysis["score"], analysis["method"]) == (
        None, None, "no text"
    )  # fmt: skip
    assert kinds(analysis) == ["no-text"]


async def test_findings_follow_the_metadata_as_declared_now(
    content_on_both: ContentHarness,
) -> None:
    """The measurement is stored; the comparison with what the author declares is
    made when the submission is read, so it never goes stale."""
    content = content_on_both
    author = await content.account(Role.VOLUNTEER)
    pdf = text_pdf(FIRST_WORDS["sw"] * 2)
    submitted = await content.submitted(author, pdf=pdf, language="sw", reading_level="early")
    assert kinds(submitted["analysis"]) == ["level-differs"]
    async with content.resources.session_factory() as session:
        row = await session.get(Submission, uuid.UUID(submitted["id"]))
        assert row is not None
        stored = row.analysis
    assert stored is not None
    assert stored["findings"] == []  # nothing about the metadata is stored
    assert findings(stored, "sw", "emergent") == []
    assert [f["kind"] for f in findings(stored, "en", "emergent")] == ["language-mismatch"]
    # Swahili has no syllables or rare words to measure: said, not guessed.
    assert set(submitted["analysis"]["features"]["unavailable"]) == {
        "syllables_per_word",
        "rare_word_share",
    }
    # And the stored measurement holds codes and figures only: no page text.
    assert FIRST_WORDS["sw"][2] not in json.dumps(stored)


async def test_a_childs_phone_number_is_a_severe_finding_and_kept_nowhere_unmasked(
    content_on_both: ContentHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    content = content_on_both
    author = await content.account(Role.VOLUNTEER)
    number = "0712 345 678"
    pages = [*FIRST_WORDS["sw"], f"Ukipotea, mpigie mama kwa {number}.", "Mwisho."]
    configure_logging("DEBUG", json=True)  # everything the service would log
    try:
        submitted = await content.submitted(author, pdf=text_pdf(pages), language="sw")
        events = await content.outbox("submission.submitted")
        logs = capsys.readouterr()
    finally:
        configure_logging("WARNING", json=False)
    (phone,) = [f for f in submitted["analysis"]["findings"] if f["kind"] == "phone-number"]
    assert (phone["severity"], phone["page"]) == ("severe", 6)
    assert submitted["analysis"]["findings"][0] == phone  # the most severe first
    assert "345" not in phone["excerpt"]
    async with content.resources.session_factory() as session:
        row = await session.get(Submission, uuid.UUID(submitted["id"]))
        assert row is not None
        stored = json.dumps(row.analysis)
    carried = json.dumps([e.model_dump(mode="json") for e in events])
    assert submitted["id"] in carried  # the event is there, by id
    for place, text in {"stored": stored, "events": carried, "logs": logs.out + logs.err}.items():
        for digits in (number, number.replace(" ", ""), "345 678"):
            assert digits not in text, place


async def test_an_offensive_word_is_a_warning_for_the_reviewer_and_stored_masked(
    content_on_both: ContentHarness,
) -> None:
    content = content_on_both
    author = await content.account(Role.VOLUNTEER)
    pages = [*FIRST_WORDS["pt"], "O lobo gritou porra e fugiu."]
    submitted = await content.submitted(author, pdf=text_pdf(pages), language="pt")
    analysis = submitted["analysis"]
    (word,) = [f for f in analysis["findings"] if f["kind"] == "offensive-word"]
    assert (word["severity"], word["page"]) == ("warning", len(pages))
    assert analysis["checks"]["offensive_words"]["checked"] == ["pt"]
    assert submitted["held"] is False  # a reviewer's judgement, not a hold
    async with content.resources.session_factory() as session:
        row = await session.get(Submission, uuid.UUID(submitted["id"]))
        assert row is not None
    assert "porra" not in json.dumps(row.analysis) + json.dumps(analysis)


async def test_the_queue_lists_flagged_work_first_and_filters_by_it(
    content_on_both: ContentHarness,
) -> None:
    content = content_on_both
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    # (French: this module's Spanish book is submitted already, and would be a duplicate.)
    plain = await content.submitted(
        author, pdf=text_pdf([FLUENT["fr"]] * 3), language="fr", reading_level="fluent"
    )
    rude = await content.submitted(
        author, pdf=text_pdf([*FIRST_WORDS["pt"], "O lobo gritou porra."]), language="pt"
    )
    held = await content.submitted(author, pdf=held_pdf(), language="sw")
    assert (plain["flagged"], rude["flagged"], held["flagged"]) == (False, True, True)
    ours = {plain["id"], rude["id"], held["id"]}

    async def queue(limit: int, **filters: str) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"every_language": "true", "limit": str(limit), **filters}
            if cursor:
                params["cursor"] = cursor
            page = await content.http.get(
                "/v1/submissions", params=params, headers=reviewer.headers
            )
            assert page.status_code == 200, page.text
            seen += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return seen

    whole = await queue(100)
    flags = [s["flagged"] for s in whole]
    assert flags == sorted(flags, reverse=True)  # every flagged one before the rest
    # Page by page, across the boundary, the same order (the keyset holds the flag).
    assert [s["id"] for s in await queue(1)] == [s["id"] for s in whole]
    assert {s["id"] for s in await queue(100, flagged="true")} & ours == {rude["id"], held["id"]}
    assert {s["id"] for s in await queue(100, flagged="false")} & ours == {plain["id"]}
    # Hostile: another volunteer asking for the flagged queue sees only their own
    # work (none), never these; a bad value is a 422.
    stranger = await content.account(Role.VOLUNTEER)
    theirs = await content.http.get(
        "/v1/submissions", params={"flagged": "true"}, headers=stranger.headers
    )
    assert theirs.status_code == 200, theirs.text
    assert theirs.json()["items"] == []
    bad = await content.http.get(
        "/v1/submissions", params={"flagged": "maybe"}, headers=reviewer.headers
    )
    assert bad.status_code == 422


def held_pdf(number: str = "0712 345 678") -> bytes:
    return text_pdf([*FIRST_WORDS["sw"], f"Ukipotea, mpigie mama kwa {number}."])


async def test_a_severe_finding_holds_approval_until_a_content_admin_clears_it(
    content_on_both: ContentHarness,
) -> None:
    content = content_on_both
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    submitted = await content.submitted(author, pdf=held_pdf(), language="sw")
    assert submitted["held"] is True
    history = (
        await content.http.get(f"/v1/submissions/{submitted['id']}/history", headers=author.headers)
    ).json()
    assert history[-1]["notes"] == (
        "Held until a CONTENT_ADMIN clears it: phone-number on page 6."
    )  # codes and pages: never the number
    claimed = (await content.claim(reviewer, submitted)).json()
    refused = await content.review(reviewer, claimed)
    assert_problem(refused, 409, "held-for-clearance")

    async def clear(who: Any, version: int, reason: str = "The number is the school's.") -> Any:
        return await content.http.post(
            f"/v1/submissions/{submitted['id']}/clearance",
            json={"reason": reason},
            headers={**who.headers, "If-Match": f'"{version}"'},
        )

    for role in (Role.STORY_MANAGER, Role.BOOK_MANAGER):
        below = await clear(await content.account(role), claimed["version"])
        assert below.status_code == 403, (role, below.text)
    admin = await content.account(Role.CONTENT_ADMIN)
    assert_problem(await clear(admin, claimed["version"], reason=""), 422)
    cleared = await clear(admin, claimed["version"])
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["held"], cleared.json()["status"]) == (False, "IN_REVIEW")
    again = await clear(admin, cleared.json()["version"])
    assert_problem(again, 409, "not-held")
    history = (
        await content.http.get(f"/v1/submissions/{submitted['id']}/history", headers=admin.headers)
    ).json()
    assert history[-1]["notes"] == "Hold cleared: The number is the school's."
    assert (history[-1]["actor_id"], history[-1]["actor_role"]) == (str(admin.id), "CONTENT_ADMIN")
    approved = await content.review(reviewer, cleared.json())
    assert approved.status_code == 200, approved.text


async def test_a_clearance_holds_for_the_bytes_read_and_new_ones_are_read_afresh(
    content_on_both: ContentHarness,
) -> None:
    content = content_on_both
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    submitted = await content.submitted(author, pdf=held_pdf(), language="sw")
    cleared = await content.http.post(
        f"/v1/submissions/{submitted['id']}/clearance",
        json={"reason": "A made-up number in the story."},
        headers={**admin.headers, "If-Match": f'"{submitted["version"]}"'},
    )
    assert cleared.status_code == 200, cleared.text
    sent_back = await content.review(reviewer, cleared.json(), "request_changes", "A typo.")
    assert sent_back.status_code == 200, sent_back.text
    # The same bytes again: still cleared.
    again = await content.submit(author, sent_back.json())
    assert (again.status_code, again.json()["held"]) == (200, False)
    sent_back = await content.review(reviewer, again.json(), "request_changes", "Another.")
    # New bytes with a number: read afresh, held again.
    uploaded = await content.upload(author, submitted["id"], held_pdf("+255 754 123 456"))
    assert uploaded.status_code in (200, 201, 204), uploaded.text
    resubmitted = await content.submit(author, sent_back.json())
    assert (resubmitted.status_code, resubmitted.json()["held"]) == (200, True)
