"""The access service learns about books from content's events, through SNS and SQS."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from shared.events import BookCreated, BookPublished, BookUnpublished, Envelope, EventData
from shared.roles import Role
from tests.harness.access import AccessHarness
from tests.support import eventually


async def publish(access: AccessHarness, data: EventData, at: datetime | None = None) -> None:
    envelope = Envelope.wrap(data, time=at)
    await access.resources.aws.sns.publish(
        TopicArn=await access.resources.events_topic_arn(data.producer),
        Message=envelope.model_dump_json(),
        MessageAttributes={"type": {"DataType": "String", "StringValue": envelope.type}},
    )


def published(book: uuid.UUID, language: str) -> BookPublished:
    return BookPublished(
        book_id=book, object_key="k", object_version="v1", access="free", language=language
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
            book_id=book, object_key="k", object_version="v1", access="free", language="sw"
        ),
    )
    await eventually(lambda: reason_is("free book"), what="publication (cache dropped)")
    books = (await access.http.get("/v1/users/me/books", headers=learner.headers)).json()
    assert {
        "book_id": str(book),
        "title": "Moon",
        "language": "sw",
        "access": "free",
        "reason": "free",
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
        BookPublished(
            book_id=book, object_key="k", object_version="v1", access="free", language="en"
        ),
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
