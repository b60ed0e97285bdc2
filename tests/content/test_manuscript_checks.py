"""The manuscript's deep check: every hostile sample is refused with its reason, a
real book passes, a child that overruns its limits is a refusal (never a crash),
and over real HTTP a refused upload leaves nothing behind and its reason in the
submission's history."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from services.content.main import SERVICE as CONTENT
from services.content.models import Book, Submission
from services.content.pdfcheck import Limits, check_manuscript_file
from shared.clients.db import drop_schema
from shared.contracts.roles import Role
from shared.service.migrations import upgrade
from stories.emulator import paused
from stories.samples import story_pdf
from tests.content.pdf_samples import HOSTILE, a_web_link, javascript_on_open
from tests.harness.access import AccessHarness
from tests.harness.content import PDF, STORY, ContentHarness, content_settings, start_content
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


async def test_a_book_with_a_link_to_a_web_page_passes(tmp_path: Path) -> None:
    assert await verdict_on(a_web_link(), tmp_path) == (True, "")


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


async def test_a_refused_manuscript_leaves_nothing_and_says_why(
    content_on_both: ContentHarness,
) -> None:
    # #37 F5: on SQLite the refusal's own transaction once waited 30 s for the
    # request's (which held the database's write lock through the check): a 500.
    content = content_on_both
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


async def test_a_manuscript_being_checked_holds_up_no_other_writer(
    content_on_both: ContentHarness, moto_url: str
) -> None:
    """#37 F5: the check runs outside the request's transaction, so another
    volunteer starts a story (a write) while S3 keeps the check waiting."""
    content = content_on_both
    author, other = await content.account(Role.VOLUNTEER), await content.account(Role.VOLUNTEER)
    draft = await content.create(author)
    uploaded = await content.upload(author, draft["id"])
    assert uploaded.status_code in (200, 201, 204), uploaded.text
    with paused(moto_url):
        submitting = asyncio.create_task(content.submit(author, draft))
        await asyncio.sleep(1.0)  # the submit reaches S3 and waits there
        assert not submitting.done()
        started = await content.http.post(
            "/v1/submissions",
            json={**STORY, "title": "Meanwhile"},
            headers=other.headers,
            timeout=5,
        )
        assert started.status_code == 201, started.text
        assert not submitting.done()
    submitted = await submitting
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "SUBMITTED"


async def test_an_upload_replaced_during_its_check_is_not_pinned(
    content_on_both: ContentHarness, moto_url: str
) -> None:
    """A new upload ticket asked for while the last upload is checked: the submit
    that checked the old one pins nothing (409), and submitting again checks the new."""
    content = content_on_both
    author = await content.account(Role.VOLUNTEER)
    draft = await content.create(author)
    assert (await content.upload(author, draft["id"])).status_code in (200, 201, 204)
    with paused(moto_url):
        submitting = asyncio.create_task(content.submit(author, draft))
        await asyncio.sleep(2.0)  # the submit has read its upload and waits on S3
        ticket = await content.http.post(
            f"/v1/submissions/{draft['id']}/upload", json={}, headers=author.headers, timeout=5
        )
        assert ticket.status_code == 200, ticket.text
    assert_problem(await submitting, 409, "upload-changed")
    assert (await content.upload(author, draft["id"])).status_code in (200, 201, 204)
    again = await content.submit(author, draft)
    assert again.status_code == 200, again.text


async def pinned_manuscript(content: ContentHarness, submission_id: str) -> Submission:
    async with content.resources.session_factory() as session:
        found = await session.get(Submission, uuid.UUID(submission_id))
        assert found is not None
        return found


async def test_what_was_checked_is_what_is_reviewed_and_published(
    content: ContentHarness,
) -> None:
    """#37 F15: pinned by content, not by name. Even with the checked copy's key
    overwritten (as a re-posted upload form did on the embedded emulator), the
    reviewer's link and the publication serve the version that was checked."""
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    submitted = await content.submitted(author)
    pinned = await pinned_manuscript(content, submitted["id"])
    assert pinned.manuscript_sha256 == hashlib.sha256(PDF).hexdigest()
    assert pinned.manuscript_version not in (None, "null")
    s3, bucket = content.resources.aws.s3, content.settings.resource_names.bucket("uploads")
    await s3.put_object(Bucket=bucket, Key=pinned.manuscript_key, Body=javascript_on_open())
    link = await content.http.get(
        f"/v1/submissions/{submitted['id']}/manuscript", headers=reviewer.headers
    )
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(link.json()["url"])).content == PDF
    approved = await content.review(reviewer, submitted)
    assert approved.status_code == 200, approved.text
    book = await content.book(admin, approved.json())
    published = await content.http.post(f"/v1/books/{book['id']}/publish", headers=admin.headers)
    assert published.status_code == 200, published.text
    async with content.resources.session_factory() as session:
        row = await session.get(Book, uuid.UUID(book["id"]))
        assert row is not None
        assert row.source_sha256 == pinned.manuscript_sha256
        found = await s3.get_object(
            Bucket=content.settings.resource_names.bucket("published"),
            Key=row.object_key,
            VersionId=row.object_version,
        )
    assert await found["Body"].read() == PDF


async def test_a_publication_whose_copy_is_not_the_checked_bytes_is_refused(
    content: ContentHarness,
) -> None:
    """The copy's own SHA-256 (S3's) is compared with the one the check read."""
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    book = await content.book(admin, await content.approved(author, reviewer))
    async with content.resources.session_factory() as session:
        row = await session.get(Book, uuid.UUID(book["id"]))
        assert row is not None
        row.source_sha256 = hashlib.sha256(b"what the check read").hexdigest()
        await session.commit()
    refused = await content.http.post(f"/v1/books/{book['id']}/publish", headers=admin.headers)
    assert_problem(refused, 409, "manuscript-changed")
    shown = await content.http.get(f"/v1/books/{book['id']}", headers=admin.headers)
    assert shown.json()["status"] == "DRAFT"


async def test_checks_past_their_places_and_line_are_a_quick_503(
    access: AccessHarness, moto_url: str
) -> None:
    """#37 F6: each check's child may use a gigabyte, so a process runs a bounded
    number at once and lets a bounded number wait; the next submit is told to come
    back (503, Retry-After) instead of taking the task's memory down with it."""
    settings = content_settings(access, pdf_checks_at_once=1, pdf_checks_waiting=1)
    await upgrade(CONTENT.migrations, settings.database_url, settings.database_schema)
    async with AsyncExitStack() as stack:
        content = await start_content(stack, access, settings)
        author = await content.account(Role.VOLUNTEER)
        drafts = [await content.create(author) for _ in range(3)]
        for draft in drafts:
            assert (await content.upload(author, draft["id"])).status_code in (200, 201, 204)
        with paused(moto_url):
            running = asyncio.create_task(content.submit(author, drafts[0]))
            await asyncio.sleep(1.0)
            waiting = asyncio.create_task(content.submit(author, drafts[1]))
            await asyncio.sleep(1.0)
            busy = await content.submit(author, drafts[2])
            assert not running.done()
            assert not waiting.done()
        assert_problem(busy, 503, "manuscript-checks-busy")
        assert busy.headers["Retry-After"] == "5"
        for task in (running, waiting):
            answer = await task
            assert answer.status_code == 200, answer.text
        # The refused one kept its upload: submitted again, it goes through.
        again = await content.submit(author, drafts[2])
        assert again.status_code == 200, again.text
    await drop_schema(settings.database_url, settings.database_schema)
