"""The whole publishing flow over real HTTP: content ⇄ access (JWKS, service token,
decisions), the manuscript through a presigned POST to the emulator, events through
the outbox, SNS and SQS into access's read model, and the public catalog."""

from __future__ import annotations

import io
import uuid

import httpx
import pytest

from shared.contracts.roles import Role
from tests.harness.access import AccessHarness
from tests.harness.content import PDF, STORY, ContentHarness
from tests.support import eventually

# Also run against LocalStack by `make test` (TEST_AWS=localstack pytest -m e2e).
pytestmark = pytest.mark.e2e


async def test_create_upload_submit_review_publish_read_unpublish(
    content: ContentHarness, access: AccessHarness, workers: None
) -> None:
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    book_manager = await content.account(Role.BOOK_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    learner = await content.account(Role.LEARNER)
    http = content.http
    marker = uuid.uuid4().hex[:8]

    # A volunteer writes a story and uploads the PDF straight to S3.
    created = await content.create(author, title=f"The Lion {marker}")
    assert created["status"] == "DRAFT"
    assert created["version"] == 1
    fetched = await http.get(f"/v1/submissions/{created['id']}", headers=author.headers)
    assert fetched.headers["ETag"] == '"1"'
    uploaded = await content.upload(author, created["id"])
    assert uploaded.status_code in (200, 201, 204), uploaded.text

    submitted = await content.submit(author, created)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "SUBMITTED"
    assert submitted.json()["manuscript_size"] == len(PDF)
    assert submitted.headers["ETag"] == f'"{submitted.json()["version"]}"'

    # The reviewer finds it in the queue, reads the manuscript, takes it, approves.
    queue = (await http.get("/v1/submissions", headers=reviewer.headers)).json()
    assert created["id"] in [s["id"] for s in queue["items"]]
    link = await http.get(f"/v1/submissions/{created['id']}/manuscript", headers=reviewer.headers)
    assert link.status_code == 200, link.text
    async with httpx.AsyncClient() as s3:
        downloaded = await s3.get(link.json()["url"])
    assert downloaded.status_code == 200
    assert downloaded.content == PDF
    claimed = await http.post(
        f"/v1/submissions/{created['id']}/claim",
        headers={**reviewer.headers, "If-Match": submitted.headers["ETag"]},
    )
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["status"] == "IN_REVIEW"
    approved = await content.review(reviewer, claimed.json(), "approve", "Lovely.")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "APPROVED"

    history = (
        await http.get(f"/v1/submissions/{created['id']}/history", headers=author.headers)
    ).json()
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "DRAFT"),
        ("DRAFT", "SUBMITTED"),
        ("SUBMITTED", "IN_REVIEW"),
        ("IN_REVIEW", "APPROVED"),
    ]
    assert history[-1]["actor_id"] == str(reviewer.id)
    assert history[-1]["notes"] == "Lovely."

    # A book manager makes it a free book; an admin publishes it.
    book = await content.book(book_manager, approved.json(), access="free")
    assert book["status"] == "DRAFT"
    assert book["title"] == f"The Lion {marker}"
    before = await http.get("/v1/books", params={"q": marker})
    assert before.json()["items"] == []
    published = await http.post(f"/v1/books/{book['id']}/publish", headers=admin.headers)
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "PUBLISHED"
    assert published.json()["edition"] == 1

    # The PDF sits in the published bucket under an unguessable, versioned key.
    [event] = [e for e in await content.outbox("book.published") if e.data["book_id"] == book["id"]]
    key = event.data["object_key"]
    assert key.startswith(f"books/{book['id']}/1-")
    assert len(key) > 60
    head = await content.resources.aws.s3.head_object(
        Bucket=content.settings.resource_names.bucket("published"),
        Key=key,
        VersionId=event.data["object_version"],
    )
    assert head["ContentType"] == "application/pdf"
    assert head["ContentDisposition"].startswith("inline; filename=")
    assert "immutable" in head["CacheControl"]

    # Everyone sees it in the catalog, with no token.
    catalog = await http.get("/v1/books", params={"q": marker})
    assert [b["id"] for b in catalog.json()["items"]] == [book["id"]]
    assert (await http.get(f"/v1/books/{book['id']}")).status_code == 200

    # The event reaches access's read model: the learner may now read the free book.
    async def learner_may_read() -> bool:
        decision = await access.http.post(
            "/v1/decisions",
            headers=await access.service_token(),
            json={"user_id": str(learner.id), "action": "book:read", "resource_id": book["id"]},
        )
        return bool(decision.json()["allow"])

    await eventually(learner_may_read, timeout=45, what="book.published in access's read model")

    # Unpublished: out of the catalog at once, and unreadable once access hears of it.
    unpublished = await http.post(f"/v1/books/{book['id']}/unpublish", headers=admin.headers)
    assert unpublished.status_code == 200, unpublished.text
    assert (await http.get("/v1/books", params={"q": marker})).json()["items"] == []
    assert (await http.get(f"/v1/books/{book['id']}")).status_code == 404
    managed = await http.get(f"/v1/books/{book['id']}", headers=book_manager.headers)
    assert managed.json()["status"] == "UNPUBLISHED"

    async def learner_refused() -> bool:
        return not await learner_may_read()

    await eventually(learner_refused, timeout=45, what="book.unpublished in access's read model")

    # Every step left its event for the other services.
    for event_type in (
        "submission.created",
        "submission.submitted",
        "submission.reviewed",
        "book.created",
        "book.published",
        "book.unpublished",
    ):
        assert await content.outbox(event_type), event_type
    [reviewed] = [
        e
        for e in await content.outbox("submission.reviewed")
        if e.data["submission_id"] == created["id"]
    ]
    assert reviewed.data["decision"] == "approve"
    assert reviewed.data["seconds_since_submitted"] >= 0


async def test_republishing_makes_a_new_edition_and_old_links_keep_the_old_file(
    content: ContentHarness,
) -> None:
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    book = await content.published_book(author=author, reviewer=reviewer, admin=admin)
    book_id = book["id"]
    await content.http.post(f"/v1/books/{book_id}/unpublish", headers=admin.headers)
    again = await content.http.post(f"/v1/books/{book_id}/publish", headers=admin.headers)
    assert again.status_code == 200, again.text
    assert again.json()["edition"] == 2
    first, second = [
        e.data for e in await content.outbox("book.published") if e.data["book_id"] == book_id
    ]
    assert first["object_key"] != second["object_key"]
    s3 = content.resources.aws.s3
    bucket = content.settings.resource_names.bucket("published")
    # A link bound to the first edition's key and version still gets that object,
    # and the first key never gets the second edition's version.
    old = await s3.get_object(
        Bucket=bucket, Key=first["object_key"], VersionId=first["object_version"]
    )
    async with old["Body"] as body:
        assert await body.read() == PDF
    versions = await s3.list_object_versions(Bucket=bucket, Prefix=first["object_key"])
    assert [v["VersionId"] for v in versions.get("Versions", [])] == [first["object_version"]]


async def test_the_submission_keeps_the_stories_metadata(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    created = await content.create(author)
    for field, value in STORY.items():
        assert created[field] == value
    assert created["author_id"] == str(author.id)


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_a_cover_is_checked_and_published_with_the_book(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    book = await content.book(admin, await content.approved(author, reviewer))
    url = f"/v1/books/{book['id']}/cover"
    refused = await content.http.post(
        url, json={"content_type": "image/gif"}, headers=admin.headers
    )
    assert refused.status_code == 415
    too_big = await content.http.post(
        url, json={"content_type": "image/png", "size": 10**9}, headers=admin.headers
    )
    assert too_big.status_code == 413

    async def upload_cover(data: bytes) -> None:
        ticket = await content.http.post(
            url, json={"content_type": "image/png"}, headers=admin.headers
        )
        assert ticket.status_code == 200, ticket.text
        form = ticket.json()
        assert form["fields"]["key"].startswith(f"covers/{book['id']}/")
        async with httpx.AsyncClient() as s3:
            posted = await s3.post(
                form["url"], data=form["fields"], files={"file": ("c.png", data, "image/png")}
            )
        assert posted.status_code in (200, 201, 204), posted.text

    # A PDF posing as a PNG stops the publication, and nothing is published.
    await upload_cover(PDF)
    publish = f"/v1/books/{book['id']}/publish"
    impostor = await content.http.post(publish, headers=admin.headers)
    assert impostor.status_code == 422, impostor.text
    assert impostor.json()["type"].endswith("/cover-not-an-image")
    still = await content.http.get(f"/v1/books/{book['id']}", headers=admin.headers)
    assert still.json()["status"] == "DRAFT"
    assert still.json()["edition"] == 0

    await upload_cover(PNG)
    published = await content.http.post(publish, headers=admin.headers)
    assert published.status_code == 200, published.text
    cover_key = published.json()["cover_url"].split(".example/", 1)[1]
    assert cover_key.startswith(f"covers/{book['id']}/1-")
    head = await content.resources.aws.s3.head_object(
        Bucket=content.settings.resource_names.bucket("published"), Key=cover_key
    )
    assert head["ContentType"] == "image/png"
    assert head["CacheControl"].startswith("public")


async def test_publishing_with_an_idempotency_key_happens_once(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    book = await content.book(admin, await content.approved(author, reviewer))
    headers = {**admin.headers, "Idempotency-Key": str(uuid.uuid4())}
    url = f"/v1/books/{book['id']}/publish"
    first = await content.http.post(url, headers=headers)
    again = await content.http.post(url, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    events = [e for e in await content.outbox("book.published") if e.data["book_id"] == book["id"]]
    assert len(events) == 1


async def test_covers_are_served_where_no_cdn_is_and_every_book_has_a_jpeg(
    content: ContentHarness,
) -> None:
    """#38: without a CDN (the embedded run, compose) no book had a cover_url, and a
    publication's only picture was an SVG. Content serves the public pictures (and
    nothing else) at /v1/assets, and every book a JPEG: its cover as one, else a card."""
    from PIL import Image

    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    bare = await content.book(admin, await content.approved(author, reviewer))
    assert (
        await content.http.post(f"/v1/books/{bare['id']}/publish", headers=admin.headers)
    ).status_code == 200
    card = await content.http.get(f"/opds/books/{bare['id']}/cover.jpg")
    assert (card.status_code, card.headers["content-type"]) == (200, "image/jpeg")
    assert Image.open(io.BytesIO(card.content)).size == (300, 450)  # the drawn card

    book = await content.book(admin, await content.approved(author, reviewer))
    drawn = io.BytesIO()
    Image.new("RGB", (1200, 1800), (200, 80, 40)).save(drawn, "PNG")
    ticket = (
        await content.http.post(
            f"/v1/books/{book['id']}/cover",
            json={"content_type": "image/png"},
            headers=admin.headers,
        )
    ).json()
    async with httpx.AsyncClient() as s3:
        posted = await s3.post(
            ticket["url"],
            data=ticket["fields"],
            files={"file": ("c.png", drawn.getvalue(), "image/png")},
        )
    assert posted.status_code in (200, 201, 204), posted.text
    published = await content.http.post(f"/v1/books/{book['id']}/publish", headers=admin.headers)
    key = published.json()["cover_url"].split(".example/", 1)[1]
    served = await content.http.get(f"/v1/assets/{key}")
    assert (served.status_code, served.headers["content-type"]) == (200, "image/png")
    assert served.content == drawn.getvalue()
    assert served.headers["cache-control"].startswith("public")
    again = await content.http.get(
        f"/v1/assets/{key}", headers={"If-None-Match": served.headers["etag"]}
    )
    assert again.status_code == 304
    rendition = await content.http.get(f"/opds/books/{book['id']}/cover.jpg")
    picture = Image.open(io.BytesIO(rendition.content))
    assert (picture.format, picture.size) == ("JPEG", (600, 900))
    red, _, blue = picture.convert("RGB").getpixel((300, 450))  # type: ignore[misc]
    assert red > 150 > blue  # the cover's own colour, not the card's blue
    # Pictures only: a book's PDF, a made-up key or a way out of covers/ is a 404.
    row = await content.http.get(f"/v1/books/{book['id']}", headers=admin.headers)
    assert row.status_code == 200
    for path in (f"covers/{book['id']}/nothing.png", "covers/../books/x.pdf", "covers/x.pdf"):
        assert (await content.http.get(f"/v1/assets/{path}")).status_code == 404, path
