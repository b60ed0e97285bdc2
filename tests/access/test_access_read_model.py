"""The access service learns about books from content's events, through SNS and SQS."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from shared.contracts.envelope import Envelope
from shared.contracts.events import BookCreated, BookPublished, BookUnpublished, EventData, Producer
from shared.contracts.roles import Role
from tests.harness.access import AccessHarness
from tests.support import eventually, original_lineage


async def publish(access: AccessHarness, data: EventData, at: datetime | None = None) -> None:
    envelope = Envelope.wrap(data, time=at)
    await access.resources.aws.sns.publish(
        TopicArn=await access.resources.events_topic_arn(data.producer),
        Message=envelope.model_dump_json(),
        MessageAttributes={"type": {"DataType": "String", "StringValue": envelope.type}},
    )


def published(book: uuid.UUID, language: str) -> BookPublished:
    return BookPublished(
        book_id=book,
        object_key="k",
        object_version="v1",
        access="free",
        language=language,
        **original_lineage(book),
    )


async def decision(access: AccessHarness, user: uuid.UUID, book: uuid.UUID) -> dict[str, object]:
    response = await access.http.post(
        "/v1/decisions",
        headers=await access.service_token(),
        json={"user_id": str(user), "action": "book:read", "resource_id": str(book)},
    )
    body: dict[str, object] = response.json()
    return body


async def test_a_published_free_book_becomes_readable_and_unpublishing_ends_it(
    access: AccessHarness, worker: None
) -> None:
    learner = await access.account(Role.LEARNER)
    book = uuid.uuid4()
    submission = uuid.uuid4()
    await publish(
        access,
        BookCreated(
            book_id=book, submission_id=submission, title="Moon", language="sw", access="free"
        ),
    )

    async def reason_is(expected: str) -> bool:
        return (await decision(access, learner.id, book))["reason"] == expected

    await eventually(lambda: reason_is("book not published"), what="the book in the read model")
    await publish(
        access,
        BookPublished(
            book_id=book,
            object_key="k",
            object_version="v1",
            access="free",
            language="sw",
            **original_lineage(book, "fluent"),
        ),
    )
    await eventually(lambda: reason_is("free book"), what="publication (cache dropped)")
    books = (await access.http.get("/v1/users/me/books", headers=learner.headers)).json()
    assert {
        "book_id": str(book),
        "title": "Moon",
        "language": "sw",
        "reading_level": "fluent",
        "family_id": str(book),
        "access": "free",
        "reason": "free",
        "assigned": False,
        "due_at": None,
    } in books
    await publish(access, BookUnpublished(book_id=book))
    await eventually(lambda: reason_is("book not published"), what="unpublication")


async def test_a_late_older_event_does_not_undo_a_newer_one(
    access: AccessHarness, worker: None
) -> None:
    learner = await access.account(Role.LEARNER)
    book = uuid.uuid4()
    now = datetime.now(UTC)
    await publish(access, BookUnpublished(book_id=book), at=now)
    await publish(
        access,
        published(book, "en"),
        at=now - timedelta(minutes=5),
    )
    marker = uuid.uuid4()
    await publish(
        access,
        BookCreated(
            book_id=marker, submission_id=uuid.uuid4(), title="m", language="en", access="free"
        ),
    )

    async def marker_seen() -> bool:
        return (await decision(access, learner.id, marker))["reason"] == "book not published"

    await eventually(marker_seen, what="events after the late one")
    await asyncio.sleep(0.5)
    assert (await decision(access, learner.id, book))["allow"] is False


async def test_book_published_of_either_version_is_consumed_during_a_rollout(
    access: AccessHarness, worker: None
) -> None:
    """An old content task writes book.published version 1, a new one version 2:
    both books become readable; only the second's level and family are known."""
    learner = await access.account(Role.LEARNER)
    old_book, new_book = uuid.uuid4(), uuid.uuid4()
    for book in (old_book, new_book):  # titled to come first in the reading list
        created = BookCreated(
            book_id=book, submission_id=uuid.uuid4(), title="0", language="en", access="free"
        )
        await publish(access, created, at=datetime.now(UTC) - timedelta(seconds=1))
    envelope = Envelope(
        source="/stories/content",
        type="book.published",
        subject=str(old_book),
        dataversion="1",
        data={
            "book_id": str(old_book),
            "object_key": "k",
            "object_version": "v1",
            "access": "free",
            "language": "en",
        },
    )
    await access.resources.aws.sns.publish(
        TopicArn=await access.resources.events_topic_arn(Producer.CONTENT),
        Message=envelope.model_dump_json(),
        MessageAttributes={"type": {"DataType": "String", "StringValue": envelope.type}},
    )
    await publish(access, published(new_book, "sw"))

    async def both_readable() -> bool:
        decisions = [await decision(access, learner.id, b) for b in (old_book, new_book)]
        return all(d["reason"] == "free book" for d in decisions)

    await eventually(both_readable, what="both versions in the read model")
    books = {
        b["book_id"]: b
        for b in (await access.http.get("/v1/users/me/books", headers=learner.headers)).json()
    }
    assert (books[str(old_book)]["reading_level"], books[str(old_book)]["family_id"]) == (
        None,
        None,
    )
    assert (books[str(new_book)]["reading_level"], books[str(new_book)]["family_id"]) == (
        "early",
        str(new_book),
    )
