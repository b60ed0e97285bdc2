"""Submissions under attack and misuse: bad uploads, stale versions, illegal transitions,
other people's drafts, retries. Each refusal is its own clear problem, and leaves
nothing half-done behind."""

from __future__ import annotations

import asyncio
import base64
import json
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from shared.contracts.roles import Role
from tests.conftest import TEST_AWS
from tests.harness.access import AccessHarness, Account
from tests.harness.content import (
    MAX_MANUSCRIPT_BYTES,
    PDF,
    STORY,
    ContentHarness,
    content_settings,
    new_id,
    start_content,
)
from tests.support import ToggleableProxy, assert_problem, eventually

# Also run against LocalStack by `make test` (TEST_AWS=localstack pytest -m e2e).
pytestmark = pytest.mark.e2e


async def uploads_of(content: ContentHarness, submission_id: str) -> list[str]:
    """Every object kept for a submission: uploads and their checked copies."""
    keys = []
    for prefix in (f"manuscripts/{submission_id}/", f"checked/manuscripts/{submission_id}/"):
        listed = await content.resources.aws.s3.list_objects_v2(
            Bucket=content.settings.resource_names.bucket("uploads"), Prefix=prefix
        )
        keys += [o["Key"] for o in listed.get("Contents", [])]
    return keys


# On moto the bad object lands and submit must catch it; on LocalStack the policy
# refuses it at the door. Both paths are the point, so both lanes run it.
@pytest.mark.both_emulators
@pytest.mark.parametrize(
    ("data", "content_type", "code"),
    [
        (b"", "application/pdf", "manuscript-empty"),
        (b"%PDF-" + b"x" * MAX_MANUSCRIPT_BYTES, "application/pdf", "manuscript-too-large"),
        (b"MZ\x90\x00 not a pdf at all", "application/pdf", "manuscript-not-pdf"),
        (PDF, "text/plain", "manuscript-wrong-type"),
    ],
    ids=["empty", "oversized", "renamed-exe", "wrong-type"],
)
async def test_a_bad_upload_is_refused_at_submit_and_discarded(
    content: ContentHarness, data: bytes, content_type: str, code: str
) -> None:
    # moto does not enforce presigned POST policies, so the bad object really
    # lands and submit must catch it. LocalStack (like S3) enforces the policy's
    # size range and content type: those uploads are refused at the door, and
    # submit finds nothing. Both lanes run in `make test`.
    author = await content.account(Role.VOLUNTEER)
    created = await content.create(author)
    uploaded = await content.upload(author, created["id"], data, content_type=content_type)
    response = await content.submit(author, created)
    if TEST_AWS == "localstack" and code != "manuscript-not-pdf":
        assert uploaded.status_code in (400, 403), uploaded.text  # the policy, enforced
        code = "manuscript-missing"
    else:
        assert uploaded.status_code in (200, 201, 204), uploaded.text
    body = assert_problem(response, 422, code)
    assert body["detail"]
    assert await uploads_of(content, created["id"]) == []
    after = await content.http.get(f"/v1/submissions/{created['id']}", headers=author.headers)
    assert after.json()["status"] == "DRAFT"
    assert after.json()["version"] == created["version"]
    # A good upload afterwards goes through.
    await content.upload(author, created["id"])
    assert (await content.submit(author, created)).status_code == 200


@pytest.mark.parametrize(
    "changes",
    [
        {"title": "The Lion\x00 and the Mouse"},
        {"title": "Invoice \u202egnp.exe"},
        {"title": "Isolated \u2066text\u2069"},
        {"summary": "Line one\x07bell"},
    ],
    ids=["nul", "right-to-left-override", "isolate", "bell-in-summary"],
)
async def test_hidden_characters_are_refused_in_what_others_read(
    content: ContentHarness, changes: dict[str, str]
) -> None:
    """#13.15: control and bidi characters are refused in titles and summaries."""
    author = await content.account(Role.VOLUNTEER)
    response = await content.http.post(
        "/v1/submissions", json={**STORY, **changes}, headers=author.headers
    )
    assert_problem(response, 422)


async def test_a_summary_keeps_its_line_breaks(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    created = await content.create(author, summary="First line.\nSecond line.\tTabbed.")
    assert created["summary"] == "First line.\nSecond line.\tTabbed."


async def test_submit_without_an_upload_says_so(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    created = await content.create(author)
    assert_problem(await content.submit(author, created), 422, "manuscript-missing")


async def test_upload_tickets_refuse_other_types_sizes_and_file_names(
    content: ContentHarness,
) -> None:
    author = await content.account(Role.VOLUNTEER)
    created = await content.create(author)
    url = f"/v1/submissions/{created['id']}/upload"
    headers = author.headers
    response = await content.http.post(url, json={"content_type": "image/png"}, headers=headers)
    assert_problem(response, 415, "unsupported-manuscript-type")
    response = await content.http.post(
        url, json={"size": MAX_MANUSCRIPT_BYTES + 1}, headers=headers
    )
    assert_problem(response, 413, "manuscript-too-large")
    for name in ("../../other/x.pdf", "a/b.pdf", "story.exe", 'x".pdf', "a\nb.pdf"):
        response = await content.http.post(url, json={"filename": name}, headers=headers)
        assert_problem(response, 422)
    response = await content.http.post(url, json={"key": "manuscripts/other.pdf"}, headers=headers)
    assert_problem(response, 422)


async def test_the_presigned_post_policy_pins_key_type_and_size(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    created = await content.create(author)
    ticket = (
        await content.http.post(
            f"/v1/submissions/{created['id']}/upload", json={}, headers=author.headers
        )
    ).json()
    fields = ticket["fields"]
    assert fields["key"].startswith(f"manuscripts/{created['id']}/")
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"key": fields["key"]} in conditions
    assert {"Content-Type": "application/pdf"} in conditions
    assert ["content-length-range", 1, MAX_MANUSCRIPT_BYTES] in conditions
    assert ticket["max_bytes"] == MAX_MANUSCRIPT_BYTES
    # Two tickets, two keys: an old ticket cannot overwrite a newer upload.
    again = (
        await content.http.post(
            f"/v1/submissions/{created['id']}/upload", json={}, headers=author.headers
        )
    ).json()
    assert again["fields"]["key"] != fields["key"]


async def test_versions_guard_every_change(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    created = await content.create(author)
    url = f"/v1/submissions/{created['id']}"
    missing = await content.http.patch(url, json={"title": "New"}, headers=author.headers)
    assert_problem(missing, 428)
    changed = await content.http.patch(
        url, json={"title": "New"}, headers={**author.headers, "If-Match": '"1"'}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2
    assert changed.headers["ETag"] == '"2"'
    stale = await content.http.patch(
        url, json={"title": "Newer"}, headers={**author.headers, "If-Match": '"1"'}
    )
    body = assert_problem(stale, 412, "version-mismatch")
    assert body["current_version"] == 2
    # Nothing of the refused change landed.
    assert (await content.http.get(url, headers=author.headers)).json()["title"] == "New"


async def test_two_reviewers_cannot_both_decide(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    first = await content.account(Role.STORY_MANAGER)
    second = await content.account(Role.STORY_MANAGER)
    submitted = await content.submitted(author)
    results = await asyncio.gather(
        content.review(first, submitted, "approve"),
        content.review(second, submitted, "reject", "Not for us."),
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 412], [r.text for r in results]
    history = (
        await content.http.get(f"/v1/submissions/{submitted['id']}/history", headers=author.headers)
    ).json()
    assert len([h for h in history if h["to_status"] in ("APPROVED", "REJECTED")]) == 1
    reviewed = [
        e
        for e in await content.outbox("submission.reviewed")
        if e.data["submission_id"] == submitted["id"]
    ]
    assert len(reviewed) == 1


async def test_illegal_transitions_are_conflicts(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    manager = await content.account(Role.BOOK_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    submitted = await content.submitted(author)
    # Submitted: no more edits, no second submit.
    edit = await content.http.patch(
        f"/v1/submissions/{submitted['id']}",
        json={"title": "Sneaky"},
        headers={**author.headers, "If-Match": f'"{submitted["version"]}"'},
    )
    assert_problem(edit, 409, "not-editable")
    assert_problem(await content.submit(author, submitted), 409, "illegal-transition")
    # Not approved: no book.
    response = await content.http.post(
        "/v1/books",
        json={"submission_id": submitted["id"], "access": "free"},
        headers=manager.headers,
    )
    assert_problem(response, 409, "submission-not-approved")
    rejected = (await content.review(reviewer, submitted, "reject", "No.")).json()
    assert_problem(await content.review(reviewer, rejected, "approve"), 409, "illegal-transition")
    # Changes requested need notes; then the author may edit and resubmit.
    other = await content.submitted(author)
    assert_problem(await content.review(reviewer, other, "request_changes"), 422)
    other = (
        await content.http.get(f"/v1/submissions/{other['id']}", headers=reviewer.headers)
    ).json()
    asked = (await content.review(reviewer, other, "request_changes", "Shorter, please.")).json()
    assert asked["status"] == "CHANGES_REQUESTED"
    edited = await content.http.patch(
        f"/v1/submissions/{other['id']}",
        json={"summary": "Shorter."},
        headers={**author.headers, "If-Match": f'"{asked["version"]}"'},
    )
    assert edited.status_code == 200, edited.text
    resubmitted = await content.submit(author, edited.json())
    assert resubmitted.status_code == 200, resubmitted.text
    assert resubmitted.json()["status"] == "SUBMITTED"
    # A book once; publishing twice is a conflict; unpublishing a draft too.
    approved = (await content.review(reviewer, resubmitted.json(), "approve")).json()
    book = await content.book(manager, approved)
    again = await content.http.post(
        "/v1/books",
        json={"submission_id": approved["id"], "access": "free"},
        headers=manager.headers,
    )
    assert_problem(again, 409, "book-exists")
    unpublish = await content.http.post(f"/v1/books/{book['id']}/unpublish", headers=admin.headers)
    assert_problem(unpublish, 409, "illegal-transition")
    assert (
        await content.http.post(f"/v1/books/{book['id']}/publish", headers=admin.headers)
    ).status_code == 200
    twice = await content.http.post(f"/v1/books/{book['id']}/publish", headers=admin.headers)
    assert_problem(twice, 409, "illegal-transition")


async def test_drafts_are_their_authors_alone(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    other = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    learner = await content.account(Role.LEARNER)
    draft = await content.create(author)
    url = f"/v1/submissions/{draft['id']}"
    for intruder in (other, reviewer):
        assert_problem(await content.http.get(url, headers=intruder.headers), 404)
        assert_problem(
            await content.http.patch(
                url, json={"title": "Mine now"}, headers={**intruder.headers, "If-Match": "*"}
            ),
            404,
        )
        assert_problem(await content.http.get(f"{url}/history", headers=intruder.headers), 404)
        listed = (await content.http.get("/v1/submissions", headers=intruder.headers)).json()
        assert draft["id"] not in [s["id"] for s in listed["items"]]
    assert_problem(await content.http.get(url, headers=learner.headers), 403)
    assert_problem(await content.http.get("/v1/submissions", headers=learner.headers), 403)
    # Submitted, reviewers see it but still may not edit it; nobody reviews their own.
    submitted = await content.submitted(other)
    seen = await content.http.get(f"/v1/submissions/{submitted['id']}", headers=reviewer.headers)
    assert seen.status_code == 200
    assert_problem(
        await content.http.patch(
            f"/v1/submissions/{submitted['id']}",
            json={"title": "Mine"},
            headers={**reviewer.headers, "If-Match": "*"},
        ),
        403,
    )
    own = await content.submitted(reviewer)
    assert_problem(await content.review(reviewer, own, "approve"), 403, "own-submission")
    assert_problem(
        await content.http.get(f"/v1/submissions/{new_id()}", headers=author.headers), 404
    )
    assert_problem(await content.http.get("/v1/submissions/not-an-id", headers=author.headers), 422)


async def test_mass_assignment_is_refused(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    for extra in ({"status": "APPROVED"}, {"author_id": new_id()}, {"version": 9}):
        response = await content.http.post(
            "/v1/submissions", json={**STORY, **extra}, headers=author.headers
        )
        assert_problem(response, 422)
    created = await content.create(author)
    response = await content.http.patch(
        f"/v1/submissions/{created['id']}",
        json={"status": "APPROVED"},
        headers={**author.headers, "If-Match": "*"},
    )
    assert_problem(response, 422)


@pytest.mark.parametrize(
    "change",
    [
        {"age_min": 9, "age_max": 3},
        {"language": "English!"},
        {"reading_level": "expert"},
        {"title": ""},
        {"title": "x" * 201},
        {"category": "Not A Slug"},
        {"age_max": False},  # schemathesis: a boolean was taken as the age 0
        {"age_min": "3"},
    ],
)
async def test_bad_metadata_is_refused(content: ContentHarness, change: dict[str, Any]) -> None:
    author = await content.account(Role.VOLUNTEER)
    response = await content.http.post(
        "/v1/submissions", json={**STORY, **change}, headers=author.headers
    )
    assert_problem(response, 422)


async def test_idempotency_keys_replay_create_submit_and_review(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    headers = {**author.headers, "Idempotency-Key": new_id()}
    first = await content.http.post("/v1/submissions", json=STORY, headers=headers)
    again = await content.http.post("/v1/submissions", json=STORY, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    mine = (await content.http.get("/v1/submissions", headers=author.headers)).json()["items"]
    assert len(mine) == 1
    reused = await content.http.post(
        "/v1/submissions", json={**STORY, "title": "Other"}, headers=headers
    )
    assert_problem(reused, 422, "idempotency-key-reused")

    created = first.json()
    await content.upload(author, created["id"])
    submit_headers = {**author.headers, "If-Match": '"1"', "Idempotency-Key": new_id()}
    url = f"/v1/submissions/{created['id']}/submit"
    submitted = await content.http.post(url, headers=submit_headers)
    replayed = await content.http.post(url, headers=submit_headers)
    assert submitted.status_code == replayed.status_code == 200, replayed.text
    assert replayed.json() == submitted.json()
    assert replayed.headers["ETag"] == submitted.headers["ETag"]

    claimed = await content.claim(reviewer, submitted.json())
    assert claimed.status_code == 200, claimed.text
    review_headers = {
        **reviewer.headers,
        "If-Match": claimed.headers["ETag"],
        "Idempotency-Key": new_id(),
    }
    url = f"/v1/submissions/{created['id']}/review"
    decided = await content.http.post(url, json={"decision": "approve"}, headers=review_headers)
    repeated = await content.http.post(url, json={"decision": "approve"}, headers=review_headers)
    assert decided.status_code == repeated.status_code == 200
    reviewed = [
        e
        for e in await content.outbox("submission.reviewed")
        if e.data["submission_id"] == created["id"]
    ]
    assert len(reviewed) == 1


async def test_a_demoted_reviewer_loses_the_power_at_once(
    content: ContentHarness, access: AccessHarness
) -> None:
    """Content asks access, which knows the current role, not the token's."""
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await access.account(Role.ADMIN)
    submitted = await content.submitted(author)
    demoted = await access.http.put(
        f"/v1/users/{reviewer.id}/role", json={"role": "VOLUNTEER"}, headers=admin.headers
    )
    assert demoted.status_code == 200, demoted.text
    response = await content.review(reviewer, submitted, "approve")
    assert_problem(response, 403, "decision-denied")


async def test_demoted_staff_lose_their_reads_at_once(
    content: ContentHarness, access: AccessHarness
) -> None:
    """#13.6: with the token from before the demotion, the queue, a submission, its
    history and its manuscript, and a book manager's drafts, are all refused."""
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    manager = await content.account(Role.BOOK_MANAGER)
    admin = await access.account(Role.ADMIN)
    approved = await content.approved(author, await content.account(Role.STORY_MANAGER))
    submitted = await content.submitted(author)
    draft_book = await content.book(manager, approved)
    sid = submitted["id"]
    reviewer_reads = [
        "/v1/submissions",
        f"/v1/submissions/{sid}",
        f"/v1/submissions/{sid}/history",
        f"/v1/submissions/{sid}/manuscript",
    ]
    manager_reads = [f"/v1/books/{draft_book['id']}", "/v1/books?status=DRAFT"]
    # Before: every read is allowed (and its decision cached).
    for url in reviewer_reads:
        assert (await content.http.get(url, headers=reviewer.headers)).status_code == 200, url
    for url in manager_reads:
        assert (await content.http.get(url, headers=manager.headers)).status_code == 200, url
    for account in (reviewer, manager):
        demoted = await access.http.put(
            f"/v1/users/{account.id}/role", json={"role": "LEARNER"}, headers=admin.headers
        )
        assert demoted.status_code == 200, demoted.text

    async def all_refused() -> bool:
        for account, urls in ((reviewer, reviewer_reads), (manager, manager_reads)):
            for url in urls:
                answer = await content.http.get(url, headers=account.headers)
                if answer.status_code not in (403, 404):
                    return False
        return True

    # The role change reaches content's decision cache over pub/sub: at once,
    # give or take the message's trip.
    await eventually(all_refused, timeout=2, what="the demotion to end staff reads")


async def test_the_manuscript_link_is_short_lived_and_for_author_and_reviewers(
    content: ContentHarness,
) -> None:
    author = await content.account(Role.VOLUNTEER)
    other = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    draft = await content.create(author)
    url = f"/v1/submissions/{draft['id']}/manuscript"
    assert_problem(await content.http.get(url, headers=author.headers), 404, "no-manuscript")
    submitted = await content.submitted(author)
    url = f"/v1/submissions/{submitted['id']}/manuscript"
    for allowed in (author, reviewer):
        link = await content.http.get(url, headers=allowed.headers)
        assert link.status_code == 200
        assert "X-Amz-Expires=300" in link.json()["url"]
    assert_problem(await content.http.get(url, headers=other.headers), 404)


async def test_with_access_down_a_decision_is_never_guessed(
    content: ContentHarness, access: AccessHarness
) -> None:
    """No cached decision and no access service: 503, and nothing is written."""
    port = int(access.url.rsplit(":", 1)[1])
    proxy = ToggleableProxy("127.0.0.1", port)
    await proxy.start()
    try:
        settings = content_settings(
            access, access_url=proxy.url, database_schema=content.settings.database_schema
        )
        async with AsyncExitStack() as stack:
            cut_off = await start_content(stack, access, settings)
            author = await content.account(Role.VOLUNTEER)
            proxy.cut()
            response = await cut_off.http.post(
                "/v1/submissions", json=STORY, headers=author.headers
            )
            assert_problem(response, 503, "access-unavailable")
            mine = await content.http.get("/v1/submissions", headers=author.headers)
            assert mine.json()["items"] == []
            proxy.restore()
            response = await cut_off.http.post(
                "/v1/submissions", json=STORY, headers=author.headers
            )
            assert response.status_code == 201, response.text
    finally:
        await proxy.stop()


HOSTILE_PAGE = b"<html><script>alert('swapped after review')</script></html>"


async def test_a_checked_manuscript_cannot_be_swapped_after_submit(
    content: ContentHarness,
) -> None:
    """#13.1: the ticket's fields, posted again after submit, change nothing anyone reads."""
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    created = await content.create(author)
    ticket = await content.http.post(
        f"/v1/submissions/{created['id']}/upload", json={}, headers=author.headers
    )
    form = ticket.json()

    async def post_to_ticket(data: bytes) -> int:
        async with httpx.AsyncClient(timeout=20) as s3:
            response = await s3.post(
                form["url"],
                data=form["fields"],
                files={"file": ("story.pdf", data, "application/pdf")},
            )
        return response.status_code

    assert await post_to_ticket(PDF) in (200, 201, 204)
    submitted = await content.submit(author, created)
    assert submitted.status_code == 200, submitted.text
    # The same fields again, with a page of script the same size class and type:
    # S3 (and LocalStack) accept it, the policy still holds until it expires.
    await post_to_ticket(HOSTILE_PAGE)

    async def manuscript() -> bytes:
        link = await content.http.get(
            f"/v1/submissions/{created['id']}/manuscript", headers=reviewer.headers
        )
        assert link.status_code == 200, link.text
        async with httpx.AsyncClient(timeout=20) as s3:
            return (await s3.get(link.json()["url"])).content

    assert await manuscript() == PDF  # what was checked, not what came after
    approved = await content.review(reviewer, submitted.json(), "approve")
    assert approved.status_code == 200, approved.text
    await post_to_ticket(HOSTILE_PAGE)
    book = await content.book(admin, approved.json())
    published = await content.http.post(f"/v1/books/{book['id']}/publish", headers=admin.headers)
    assert published.status_code == 200, published.text
    [event] = [e for e in await content.outbox("book.published") if e.data["book_id"] == book["id"]]
    served = await content.resources.aws.s3.get_object(
        Bucket=content.settings.resource_names.bucket("published"),
        Key=event.data["object_key"],
        VersionId=event.data["object_version"],
    )
    async with served["Body"] as body:
        assert await body.read() == PDF
    # Kept: the checked copy, and the ticket's object the last re-post wrote, which
    # nothing reads (submit deleted the one it checked).
    ticket_key = form["fields"]["key"]
    assert sorted(await uploads_of(content, created["id"])) == [
        f"checked/{ticket_key}",
        ticket_key,
    ]


async def test_publishing_a_book_whose_manuscript_is_gone_is_a_conflict(
    content: ContentHarness,
) -> None:
    """#13.10: the source object deleted behind our back is a 409 problem, not a 500."""
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    approved = await content.approved(author, reviewer)
    book = await content.book(admin, approved)
    # The bucket is versioned and the checked version pinned, so a plain delete (a
    # delete marker) loses nothing: gone means every version gone.
    s3, bucket = content.resources.aws.s3, content.settings.resource_names.bucket("uploads")
    for key in await uploads_of(content, approved["id"]):
        versions = await s3.list_object_versions(Bucket=bucket, Prefix=key)
        for version in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
            await s3.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
    response = await content.http.post(f"/v1/books/{book['id']}/publish", headers=admin.headers)
    assert_problem(response, 409, "manuscript-gone")
    after = await content.http.get(f"/v1/books/{book['id']}", headers=admin.headers)
    assert after.json()["status"] == "DRAFT"


async def test_a_claim_reserves_the_submission_for_its_reviewer(content: ContentHarness) -> None:
    """#37 F16: another reviewer could decide a submission someone had claimed, and
    anyone could decide one nobody had claimed. Only the claimant decides now; a
    take-over is explicit and in the history."""
    author = await content.account(Role.VOLUNTEER)
    first = await content.account(Role.STORY_MANAGER)
    second = await content.account(Role.STORY_MANAGER)
    submitted = await content.submitted(author)

    async def decide(reviewer: Account, submission: dict[str, Any]) -> httpx.Response:
        return await content.http.post(
            f"/v1/submissions/{submission['id']}/review",
            json={"decision": "approve"},
            headers={**reviewer.headers, "If-Match": f'"{submission["version"]}"'},
        )

    assert_problem(await decide(first, submitted), 409, "not-claimed")
    claimed = await content.claim(first, submitted)
    assert claimed.status_code == 200, claimed.text
    mine = claimed.json()
    body = assert_problem(await decide(second, mine), 409, "claimed-by-another")
    assert body["reviewer_id"] == str(first.id)
    assert_problem(await content.claim(second, mine), 409, "claimed-by-another")
    # Claimed again by its own reviewer: nothing changes.
    again = await content.claim(first, mine)
    assert (again.status_code, again.json()["version"]) == (200, mine["version"])
    taken = await content.http.post(
        f"/v1/submissions/{mine['id']}/claim",
        json={"take_over": True},
        headers={**second.headers, "If-Match": f'"{mine["version"]}"'},
    )
    assert taken.status_code == 200, taken.text
    assert_problem(await decide(first, taken.json()), 409, "claimed-by-another")
    decided = await decide(second, taken.json())
    assert decided.status_code == 200, decided.text
    history = (
        await content.http.get(f"/v1/submissions/{mine['id']}/history", headers=author.headers)
    ).json()
    steps = [(h["to_status"], h["actor_id"], h["notes"]) for h in history]
    assert steps[-3:] == [
        ("IN_REVIEW", str(first.id), None),
        ("IN_REVIEW", str(second.id), f"Taken over from reviewer {first.id}."),
        ("APPROVED", str(second.id), None),
    ]
