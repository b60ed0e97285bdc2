"""Processing a publication (#21), through the real flow: content's API publishes,
its worker relays book.published over SNS (moto) to its own queue, consumes it,
processes the PDF in a child process and records what it made.

A heavy illustrated book gets its page count, WebP thumbnails (the cover, as
none was uploaded), a lite edition at least 3x smaller whose text is still text
and whose pictures still look the same, and its pages' text in the catalog's
search; book.processed says so. A redelivered book.published changes nothing. A
book that cannot be processed within the limits goes to the dead-letter queue at
once with the reason, and `stories dlq redrive` brings it back once the limits
allow it.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pypdfium2
import pytest
from PIL import Image, ImageChops, ImageStat

from services.content.main import SERVICE as CONTENT
from services.content.models import Book
from shared.bus.provision import peek_dead_letters, redrive_dead_letters
from shared.clients.aws import queue_url
from shared.clients.db import drop_schema
from shared.contracts.roles import Role
from shared.service.migrations import upgrade
from shared.service.runtime import run_worker
from stories.samples import story_pdf
from tests.harness.access import AccessHarness
from tests.harness.content import STORY, ContentHarness, content_settings, start_content
from tests.support import eventually, unique_schema

pytestmark = pytest.mark.slow

# Three scanned pages: about 6.6 MB, as a volunteer's scanner makes them.
PAGES = 3
HEAVY = story_pdf(str(STORY["title"]), PAGES, scanned=True, words="The zebra hums a lullaby")
BIG_ENOUGH = 64 * 1024 * 1024


@asynccontextmanager
async def content_with_worker(
    access: AccessHarness, schema: str, *, migrate: bool = True, **overrides: Any
) -> AsyncIterator[ContentHarness]:
    """Content's API and its worker (relay and consumer), on `access`'s queues."""
    settings = content_settings(
        access, manuscript_max_bytes=BIG_ENOUGH, database_schema=schema, **overrides
    )
    if migrate:
        await upgrade(CONTENT.migrations, settings.database_url, schema)
    stop = asyncio.Event()
    async with AsyncExitStack() as stack:
        harness = await start_content(stack, access, settings)
        worker = asyncio.create_task(run_worker(CONTENT, settings, stop, harness.resources))
        try:
            yield harness
        finally:
            stop.set()
            await worker


@pytest.fixture
async def processing_schema(access: AccessHarness) -> AsyncIterator[str]:
    name = unique_schema("processing")
    yield name
    await drop_schema(access.settings.database_url, name)


async def publish_heavy_book(content: ContentHarness, **changes: Any) -> dict[str, Any]:
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    created = await content.create(author, **changes)
    return await content.publish_draft(
        created, author=author, reviewer=reviewer, admin=admin, pdf=HEAVY
    )


async def processed(content: ContentHarness, book_id: str) -> dict[str, Any] | None:
    answer = await content.http.get(f"/v1/books/{book_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body if body["formats"] else None


async def when_processed(content: ContentHarness, book_id: str) -> dict[str, Any]:
    await eventually(lambda: processed(content, book_id), timeout=60, what="book processed")
    body = await processed(content, book_id)
    assert body is not None
    return body


async def stored(content: ContentHarness, key: str, version: str | None = None) -> bytes:
    extra = {"VersionId": version} if version and version != "null" else {}
    found = await content.resources.aws.s3.get_object(
        Bucket=content.settings.resource_names.bucket("published"), Key=key, **extra
    )
    async with found["Body"] as body:
        data: bytes = await body.read()
    return data


async def book_row(content: ContentHarness, book_id: str) -> Book:
    async with content.resources.session_factory() as session:
        book = await session.get(Book, uuid.UUID(book_id))
        assert book is not None
        return book


def page_image(pdf: bytes, index: int) -> Image.Image:
    document = pypdfium2.PdfDocument(pdf)
    try:
        image: Image.Image = document[index].render(scale=1).to_pil().convert("RGB")
        return image
    finally:
        document.close()


def page_text(pdf: bytes) -> list[str]:
    document = pypdfium2.PdfDocument(pdf)
    try:
        texts = []
        for page in document:
            textpage = page.get_textpage()
            texts.append(" ".join(textpage.get_text_bounded().split()))
            textpage.close()
        return texts
    finally:
        document.close()


async def test_a_published_book_gets_a_lite_edition_thumbnails_and_searchable_text(
    access: AccessHarness, processing_schema: str
) -> None:
    async with content_with_worker(access, processing_schema) as content:
        book = await publish_heavy_book(content)
        assert book["formats"] == []
        assert book["page_count"] is None
        done = await when_processed(content, book["id"])

        assert done["page_count"] == PAGES
        sizes = {f["format"]: f["size_bytes"] for f in done["formats"]}
        assert sizes["pdf"] == len(HEAVY)
        assert sizes["pdf"] >= 3 * sizes["pdf-lite"], sizes
        assets = content.settings.published_assets_url
        assert set(done["thumbnails"]) == {"200", "600"}
        assert all(url.startswith(f"{assets}/covers/") for url in done["thumbnails"].values())
        assert done["cover_url"] == done["thumbnails"]["600"]  # no cover was uploaded

        row = await book_row(content, book["id"])
        assert row.formats is not None
        assert row.thumbnail_keys is not None
        lite_format = next(f for f in row.formats if f["format"] == "pdf-lite")
        lite = await stored(content, lite_format["object_key"], lite_format["object_version"])
        assert len(lite) == sizes["pdf-lite"]
        # Text stays text; pictures look the same (mean difference per channel, 0-255).
        assert page_text(lite) == page_text(HEAVY)
        assert "The zebra hums a lullaby" in page_text(lite)[0]
        for index in (0, PAGES - 1):
            difference = ImageChops.difference(page_image(HEAVY, index), page_image(lite, index))
            assert max(ImageStat.Stat(difference).mean) < 8, index
        for width, key in row.thumbnail_keys.items():
            with Image.open(io.BytesIO(await stored(content, key))) as thumbnail:
                assert thumbnail.format == "WEBP"
                assert thumbnail.width == int(width)

        # The pages' text is searched (in the book's language: "hums" stems to "hum").
        found = await content.http.get("/v1/books", params={"q": "humming zebras"})
        assert [b["id"] for b in found.json()["items"]] == [book["id"]]

        processed_events = await content.outbox("book.processed")
        assert [e.data["book_id"] for e in processed_events] == [book["id"]]
        event = processed_events[0].data
        assert event["source_version"] == row.object_version
        assert event["page_count"] == PAGES
        assert {f["format"]: f["size_bytes"] for f in event["formats"]} == sizes


async def test_a_redelivered_publication_changes_nothing(
    access: AccessHarness, processing_schema: str
) -> None:
    async with content_with_worker(access, processing_schema) as content:
        book = await publish_heavy_book(content)
        first = await when_processed(content, book["id"])
        before = await book_row(content, book["id"])
        (published,) = [
            e for e in await content.outbox("book.published") if e.data["book_id"] == book["id"]
        ]
        queue = await queue_url(
            content.resources.aws.sqs, content.settings.resource_names.queue("content")
        )
        # The same event again, as SQS may deliver it, and a copy under a new id (as
        # a replayed outbox would send it): neither processes the book twice.
        replayed = published.model_copy(update={"id": uuid.uuid4()})
        for envelope in (published, replayed):
            await content.resources.aws.sqs.send_message(
                QueueUrl=queue, MessageBody=envelope.model_dump_json()
            )
        await eventually(lambda: _queue_empty(content, queue), timeout=30, what="queue drained")
        after = await book_row(content, book["id"])
        assert after.formats == before.formats  # the same objects: nothing made again
        assert after.thumbnail_keys == before.thumbnail_keys
        assert await processed(content, book["id"]) == first
        assert len(await content.outbox("book.processed")) == 1


def _aws_environment(content: ContentHarness) -> dict[str, str]:
    settings = content.settings
    return {
        "AWS_ENDPOINT_URL": str(settings.aws_endpoint_url),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": settings.aws_region,
        "STORIES_RESOURCE_PREFIX": settings.resource_prefix,
    }


async def _queue_empty(content: ContentHarness, queue: str) -> bool:
    attributes = (
        await content.resources.aws.sqs.get_queue_attributes(
            QueueUrl=queue,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
    )["Attributes"]
    return all(int(v) == 0 for v in attributes.values())


async def test_a_book_beyond_the_limits_is_dead_lettered_with_its_reason_then_redriven(
    access: AccessHarness, processing_schema: str
) -> None:
    async with content_with_worker(access, processing_schema, processing_seconds=0.05) as content:
        sqs, names = content.resources.aws.sqs, content.settings.resource_names
        book = await publish_heavy_book(content)

        async def dead_letters() -> list[dict[str, Any]]:
            letters = await peek_dead_letters(sqs, names, "content")
            return [letter for letter in letters if letter["subject"] == book["id"]]

        await eventually(dead_letters, timeout=60, what="dead-lettered")
        (letter,) = await dead_letters()
        assert letter["type"] == "book.published"
        assert "could not be processed within the limits" in letter["reason"], letter
        assert book["id"] in letter["reason"]
        assert letter["receive_count"] >= 1
        # What the on-call engineer sees: the same, from the command line.
        listed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "stories.cli", "dlq", "list", "content"],
            env={**os.environ, **_aws_environment(content)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        shown = [json.loads(line) for line in listed.stdout.splitlines()]
        assert any(
            s["subject"] == book["id"] and "within the limits" in s["reason"] for s in shown
        ), listed.stdout
        assert await processed(content, book["id"]) is None

    # The limits raised (a bigger task, say): the dead letter goes back and is processed.
    async with content_with_worker(access, processing_schema, migrate=False) as content:
        moved = await redrive_dead_letters(
            content.resources.aws.sqs, content.settings.resource_names, "content"
        )
        assert moved >= 1
        done = await when_processed(content, book["id"])
        assert done["page_count"] == PAGES
