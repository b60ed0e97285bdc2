"""`GET /v1/users/me/recommendations` (#42) over HTTP, on both databases: the history
from delivery's events through SNS and SQS, the model refitted, each reader's picks
with their reasons, what a reader may open, and an erased reader forgotten."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from services.access.main import SERVICE as ACCESS
from services.access.models import BookLikeness, ReadingHistory
from services.access.next_books import MODEL_CHANNEL, refit
from shared.contracts.clock import now_utc
from shared.contracts.events import (
    BookCreated,
    BookPublished,
    DeliveryIssued,
    ReadingCompleted,
    ReadingOpened,
)
from shared.contracts.roles import Role
from tests.harness import running_workers
from tests.harness.access import AccessHarness, Account, running_access_harness
from tests.support import assert_problem, eventually, original_lineage, unique_schema


@pytest.fixture
async def either(either_database_url: str, moto_url: str) -> AsyncIterator[AccessHarness]:
    url = either_database_url
    async with (
        running_access_harness(url, moto_url, database_schema=unique_schema("next")) as harness,
        running_workers((ACCESS, harness)),
    ):
        yield harness


async def book(
    access: AccessHarness, title: str, language: str = "en", access_level: str = "free"
) -> uuid.UUID:
    book_id = uuid.uuid4()
    await access.publish(BookCreated(
        book_id=book_id, submission_id=uuid.uuid4(), title=title, language=language,
        access=access_level,
    ))  # fmt: skip
    await access.publish(BookPublished(
        book_id=book_id, object_key="k", object_version="v1", access=access_level,
        language=language, **original_lineage(book_id),
    ))  # fmt: skip
    return book_id


async def read(access: AccessHarness, reader: Account, *books: uuid.UUID) -> None:
    """Opened online (a link), read to the end."""
    for book_id in books:
        await access.publish(DeliveryIssued(book_id=book_id, user_id=reader.id, method="s3"))
        await access.publish(ReadingCompleted(book_id=book_id, user_id=reader.id))


async def opened_offline(access: AccessHarness, reader: Account, book_id: uuid.UUID) -> None:
    await access.publish(ReadingOpened(book_id=book_id, user_id=reader.id))


async def history_of(
    access: AccessHarness, reader: Account, *, finished: bool = True
) -> set[uuid.UUID]:
    async with access.resources.session_factory() as session:
        rows = await session.scalars(
            select(ReadingHistory).where(ReadingHistory.user_id == reader.id)
        )
        return {row.book_id for row in rows if row.completed or not finished}


async def refitted(access: AccessHarness) -> None:
    """What the worker's job does: refit, commit, tell every API process."""
    async with access.resources.session_factory() as session:
        await refit(session, now_utc())
        await session.commit()
    await access.resources.bus.publish(MODEL_CHANNEL, "*")


async def picks(access: AccessHarness, reader: Account, **params: int | str) -> dict[str, Any]:
    response = await access.http.get(
        "/v1/users/me/recommendations", headers=reader.headers, params=params
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_reader_gets_what_readers_like_them_read_next_and_only_what_they_may_open(
    either: AccessHarness,
) -> None:
    access = either
    lion, zebra, hippo = [x async for x in _titles(access, "Lion", "Zebra", "Hippo")]
    locked = await book(access, "Locked", access_level="entitled")
    goat = await book(access, "Mbuzi", "sw")
    others = [await access.account(Role.LEARNER) for _ in range(3)]
    me, newcomer = await access.account(Role.LEARNER), await access.account(Role.LEARNER)
    for other in others:
        await read(access, other, lion, zebra, locked)
    await read(access, me, lion)
    await opened_offline(access, me, hippo)
    await eventually(lambda: _opened(access, me, hippo), what="the offline open reached access")
    await eventually(
        lambda: access.knows_published(lion, zebra, hippo, locked, goat),
        what="access heard of every book",
    )
    for reader, books in [*((o, {lion, zebra, locked}) for o in others), (me, {lion})]:
        await eventually(_reached(access, reader, books), what="the reads reached access")
    # Before a refit the model knows no co-reading: popular books only.
    unfitted = await picks(access, me)
    assert {item["reason"] for item in unfitted["items"]} == {"popular"}
    await refitted(access)  # every API process drops its copy of the model

    async def fitted() -> bool:
        return bool((await picks(access, me))["items"][0]["reason"] == "because-you-read")

    await eventually(fitted, what="the API read the refitted model")
    mine = await picks(access, me)
    items = mine["items"]
    assert isinstance(items, list)
    assert items[0]["book_id"] == str(zebra)
    assert items[0]["reason"] == "because-you-read"
    assert items[0]["because_book_id"] == str(lion)
    assert items[0]["reason_text"] == "because you read Lion"
    ids = {item["book_id"] for item in items}
    assert str(lion) not in ids, "a finished book is not next"
    assert str(locked) not in ids, "not entitled: never offered, however alike"
    assert str(goat) not in ids, "not a language they read"
    assert str(hippo) not in ids, "opened offline: read already"
    assert mine["note"] is None
    # A reason names only the reader's own reading, never what another read.
    assert {i["because_book_id"] for i in items if i["because_book_id"]} == {str(lion)}

    # A newcomer: the most read in the languages they said they read, and why.
    fresh = await picks(access, newcomer)
    assert fresh["note"] == "no-history"
    said = await access.http.put(
        "/v1/users/me/reading-languages", headers=newcomer.headers, json={"languages": ["sw"]}
    )
    assert said.status_code == 200, said.text
    assert said.json()["reading_languages"] == ["sw"]
    fresh = await picks(access, newcomer)
    assert [item["book_id"] for item in fresh["items"]] == [str(goat)]
    assert fresh["items"][0]["reason_text"] == "popular in sw"


async def _titles(access: AccessHarness, *titles: str) -> AsyncIterator[uuid.UUID]:
    for title in titles:
        yield await book(access, title)


async def _has(access: AccessHarness, reader: Account, books: set[uuid.UUID]) -> bool:
    return await history_of(access, reader) >= books


async def _opened(access: AccessHarness, reader: Account, book_id: uuid.UUID) -> bool:
    return book_id in await history_of(access, reader, finished=False)


def _reached(
    access: AccessHarness, reader: Account, books: set[uuid.UUID]
) -> Callable[[], Awaitable[bool]]:
    return lambda: _has(access, reader, books)


async def test_an_erased_reader_leaves_the_model_and_their_late_reads_are_dropped(
    either: AccessHarness,
) -> None:
    access = either
    lion, hippo = [x async for x in _titles(access, "Lion", "Hippo")]
    gone = await access.account(Role.LEARNER)
    await read(access, gone, lion, hippo)
    await eventually(lambda: _has(access, gone, {lion, hippo}), what="the reads reached access")
    await refitted(access)
    assert hippo in await _neighbours(access, lion)

    erased = await access.http.delete("/v1/users/me", headers=gone.headers)
    assert erased.status_code == 204, erased.text
    # The user.erased event reaches access's own worker, which refits at once.
    await eventually(
        lambda: _neighbours_without(access, lion, hippo), what="the model forgot the reader"
    )
    assert await history_of(access, gone) == set()
    await read(access, gone, lion)  # a device uploads late
    await access.publish(ReadingOpened(book_id=hippo, user_id=uuid.uuid4()))  # nobody's
    await eventually(lambda: _queue_empty(access, "access"), what="access handled every event")
    async with access.resources.session_factory() as session:
        assert list(await session.scalars(select(ReadingHistory))) == []
    assert await _queue_empty(access, "access-dlq"), "dropped as an answer, not failed"


async def _queue_empty(access: AccessHarness, queue: str) -> bool:
    sqs = access.resources.aws.sqs
    url = (await sqs.get_queue_url(QueueName=access.settings.resource_names.queue(queue)))[
        "QueueUrl"
    ]
    counts = (
        await sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
    )["Attributes"]
    return all(int(n) == 0 for n in counts.values())


async def _neighbours(access: AccessHarness, book_id: uuid.UUID) -> set[uuid.UUID]:
    async with access.resources.session_factory() as session:
        rows = await session.scalars(select(BookLikeness).where(BookLikeness.book_id == book_id))
        return {row.other_id for row in rows}


async def _neighbours_without(access: AccessHarness, book_id: uuid.UUID, other: uuid.UUID) -> bool:
    return other not in await _neighbours(access, book_id)


async def test_only_people_ask_and_bad_input_is_a_problem(either: AccessHarness) -> None:
    access = either
    assert_problem(await access.http.get("/v1/users/me/recommendations"), 401)
    service = await access.service_token()
    assert_problem(await access.http.get("/v1/users/me/recommendations", headers=service), 403)
    reader = await access.account(Role.LEARNER)
    for limit in (0, 51, "many"):
        assert_problem(
            await access.http.get(
                "/v1/users/me/recommendations", headers=reader.headers, params={"limit": limit}
            ),
            422,
        )
    for languages in (["not a tag!"], ["en"] * 11, "en"):
        assert_problem(
            await access.http.put(
                "/v1/users/me/reading-languages",
                headers=reader.headers,
                json={"languages": languages},
            ),
            422,
        )
