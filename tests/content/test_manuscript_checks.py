"""The manuscript's deep check: every hostile sample is refused with its reason, a
real book passes, a child that overruns its limits is a refusal (never a crash),
and over real HTTP a refused upload leaves nothing behind and its reason in the
submission's history."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from services.content.pdfcheck import Limits, check_manuscript_file
from shared.roles import Role
from stories.samples import story_pdf
from tests.content.pdf_samples import HOSTILE, javascript_on_open
from tests.harness.content import ContentHarness
from tests.support import assert_problem

LIMITS = Limits(max_pages=300, cpu_seconds=10, memory_bytes=1024**3, wall_seconds=30)


async def verdict_on(data: bytes, tmp_path: Path, limits: Limits = LIMITS) -> tuple[bool, str]:
    path = tmp_path / "upload.pdf"
    path.write_bytes(data)
    verdict = await check_manuscript_file(str(path), limits)
    return verdict.ok, verdict.code


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_every_hostile_sample_is_refused_with_its_reason(name: str, tmp_path: Path) -> None:
    make: Callable[[], bytes]
    make, codes = HOSTILE[name]
    ok, code = await verdict_on(make(), tmp_path)
    assert not ok, name
    assert code in codes, (name, code)


async def test_a_real_book_passes_and_counts_its_pages(tmp_path: Path) -> None:
    path = tmp_path / "book.pdf"
    path.write_bytes(story_pdf("Forty pages", pages=40))
    verdict = await check_manuscript_file(str(path), LIMITS)
    assert (verdict.ok, verdict.pages) == (True, 40)


async def test_a_check_that_overruns_its_limits_is_a_refusal(tmp_path: Path) -> None:
    book = story_pdf("Fine, but the limits are not")
    # Too little time: the child is killed; too little memory: it dies starting.
    for limits in (
        Limits(max_pages=300, cpu_seconds=10, memory_bytes=1024**3, wall_seconds=0.01),
        Limits(max_pages=300, cpu_seconds=10, memory_bytes=32 * 1024**2, wall_seconds=30),
    ):
        assert await verdict_on(book, tmp_path, limits) == (False, "manuscript-too-complex")


async def test_a_refused_manuscript_leaves_nothing_and_says_why(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    draft = await content.create(author)
    uploaded = await content.upload(author, draft["id"], javascript_on_open())
    assert uploaded.status_code in (200, 201, 204), uploaded.text
    refused = await content.submit(author, draft)
    body = assert_problem(refused, 422, "manuscript-active-content")
    assert "JavaScript" in body["detail"]
    # Nothing left behind: neither the upload nor its checked copy.
    bucket = content.settings.resource_names.bucket("uploads")
    listed = await content.resources.aws.s3.list_objects_v2(
        Bucket=bucket, Prefix=f"manuscripts/{draft['id']}/"
    )
    checked = await content.resources.aws.s3.list_objects_v2(
        Bucket=bucket, Prefix=f"checked/manuscripts/{draft['id']}/"
    )
    assert listed.get("KeyCount", 0) == 0
    assert checked.get("KeyCount", 0) == 0
    # The reason is in the history; the submission is still a draft.
    history = (
        await content.http.get(f"/v1/submissions/{draft['id']}/history", headers=author.headers)
    ).json()
    assert history[-1]["to_status"] == "DRAFT"
    assert history[-1]["notes"].startswith("Manuscript refused (manuscript-active-content)")
    # A clean file then goes through.
    again = await content.upload(author, draft["id"])
    assert again.status_code in (200, 201, 204)
    current = (
        await content.http.get(f"/v1/submissions/{draft['id']}", headers=author.headers)
    ).json()
    submitted = await content.submit(author, current)
    assert submitted.status_code == 200, submitted.text
