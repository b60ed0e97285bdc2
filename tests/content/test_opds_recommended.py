"""#42: a signed-in reader's OPDS root starts with their own "Recommended for you"
group, from access over real HTTP, and is private to them; the shared root has no
such group, and says it varies with who asks."""

from __future__ import annotations

import uuid

from services.access.models import ReadingHistory
from services.access.next_books import MODEL_CHANNEL, refit
from shared.contracts.clock import now_utc
from shared.contracts.events import DeliveryIssued, ReadingCompleted
from shared.contracts.roles import Role
from tests.harness.access import AccessHarness, Account
from tests.harness.content import ContentHarness
from tests.support import assert_problem, eventually


async def read(access: AccessHarness, reader: Account, *books: uuid.UUID) -> None:
    for book in books:
        await access.publish(DeliveryIssued(book_id=book, user_id=reader.id, method="s3"))
        await access.publish(ReadingCompleted(book_id=book, user_id=reader.id))


async def rows(access: AccessHarness) -> int:
    async with access.resources.session_factory() as session:
        return len(list(await session.scalars(ReadingHistory.__table__.select())))


async def test_a_readers_root_starts_with_their_next_books_and_is_theirs_alone(
    content: ContentHarness, access: AccessHarness, workers: None
) -> None:
    first = uuid.UUID((await content.book_for_readers("free"))["id"])
    second = uuid.UUID((await content.book_for_readers("free"))["id"])
    other = await access.account(Role.LEARNER)
    me = await access.account(Role.LEARNER)
    await eventually(lambda: access.knows_published(first, second), what="access heard of both")
    before = await rows(access)
    await read(access, other, first, second)
    await read(access, me, first)
    await eventually(lambda: _rows_are(access, before + 3), what="the reads reached access")
    async with access.resources.session_factory() as session:
        await refit(session, now_utc())
        await session.commit()
    await access.resources.bus.publish(MODEL_CHANNEL, "*")  # as the worker's job does

    mine = await content.http.get("/opds", headers=me.headers)
    assert mine.status_code == 200, mine.text
    assert mine.headers["cache-control"] == "private, no-store"
    group = mine.json()["groups"][0]
    assert group["metadata"]["title"] == "Recommended for you"
    ids = [p["metadata"]["identifier"] for p in group["publications"]]
    assert ids[0].endswith(str(second)), "what the other reader read next"
    assert all(not i.endswith(str(first)) for i in ids), "read already"

    shared = await content.http.get("/opds")
    assert shared.status_code == 200
    assert "Authorization" in shared.headers["vary"]
    titles = [g["metadata"]["title"] for g in shared.json()["groups"]]
    assert "Recommended for you" not in titles
    # Another reader's root holds their picks: they read both books, so neither.
    theirs = (await content.http.get("/opds", headers=other.headers)).json()["groups"]
    offered = [
        p["metadata"]["identifier"]
        for g in theirs
        if g["metadata"]["title"] == "Recommended for you"
        for p in g["publications"]
    ]
    assert not [i for i in offered if i.endswith((str(first), str(second)))]


async def _rows_are(access: AccessHarness, count: int) -> bool:
    return await rows(access) >= count


async def test_a_token_that_is_not_valid_is_refused_not_taken_for_anyone(
    content: ContentHarness,
) -> None:
    refused = await content.http.get("/opds", headers={"Authorization": "Bearer not-a-token"})
    assert_problem(refused, 401)
