"""#20 reading apps' progression (OPDS Progression): GET / PUT
/v1/reading/{book_id}/progression with the device and the device's time; the
furthest page wins, a stale write is a 409 that carries the current state, the
length comes from the processed publication, and bad input is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.contracts.roles import Role
from stories.samples import story_pdf
from tests.harness.access import AccessHarness, Account
from tests.harness.content import ContentHarness
from tests.harness.delivery import DeliveryHarness
from tests.support import assert_problem, eventually

PROGRESSION_TYPE = "application/vnd.readium.progression+json"
PAGES = 12


def progression(position: int, modified: datetime, device: str = "tablet-1") -> dict[str, Any]:
    return {
        "modified": modified.isoformat(),
        "device": {"id": device, "name": "Library tablet"},
        "locator": {
            "href": "publication.pdf",
            "type": "application/pdf",
            # What reading apps send beside the position is ignored, not refused.
            "locations": {"position": position, "progression": 0.5, "fragments": ["page=1"]},
        },
    }


async def put(
    delivery: DeliveryHarness, reader: Account, book: str, body: dict[str, Any]
) -> httpx.Response:
    return await delivery.http.put(
        f"/v1/reading/{book}/progression", json=body, headers=reader.headers
    )


@pytest.fixture(scope="module")
async def book(
    access: AccessHarness, content: ContentHarness, delivery: DeliveryHarness, workers: None
) -> str:
    """A free book delivery knows the length of (from book.processed)."""
    published = await content.book_for_readers("free", pdf=story_pdf("Moons", pages=PAGES))
    someone = await access.account(Role.LEARNER)
    now = datetime.now(UTC)

    async def length_known() -> bool:
        answer = await put(delivery, someone, published["id"], progression(0, now))
        return answer.status_code == 200

    await eventually(length_known, timeout=60, what="the book and its page count in delivery")
    return str(published["id"])


async def test_the_furthest_page_wins_and_a_stale_progression_is_a_409_with_the_current(
    access: AccessHarness, delivery: DeliveryHarness, book: str
) -> None:
    reader = await access.account(Role.LEARNER)
    now = datetime.now(UTC).replace(microsecond=0)
    path = f"/v1/reading/{book}/progression"
    none_yet = await delivery.http.get(path, headers=reader.headers)
    assert_problem(none_yet, 404, "no-progression")

    first = await put(delivery, reader, book, progression(2, now - timedelta(minutes=10)))
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == PROGRESSION_TYPE
    # The length is the publication's page count (from book.processed).
    assert first.json()["locator"]["locations"] == {"position": 2, "totalProgression": 0.1667}
    pages = PAGES
    # Newer but behind (another device went back a page): the furthest page stays,
    # the device and time are the newest.
    behind = progression(1, now - timedelta(minutes=5), device="phone-2")
    answer = await put(delivery, reader, book, behind)
    assert answer.status_code == 200, answer.text
    current = answer.json()
    assert current["locator"]["locations"]["position"] == 2
    assert current["device"] == {"id": "phone-2", "name": "Library tablet"}
    assert datetime.fromisoformat(current["modified"]) == now - timedelta(minutes=5)

    # Older than what is stored: stale, and the answer says what is current.
    stale = await put(delivery, reader, book, progression(pages, now - timedelta(minutes=20)))
    problem = assert_problem(stale, 409, "stale-progression")
    assert problem["current"] == current
    # The same progression again (a retry) is taken: nothing is newer than it.
    again = await put(delivery, reader, book, behind)
    assert again.status_code == 200
    assert again.json() == current
    fetched = await delivery.http.get(path, headers=reader.headers)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == PROGRESSION_TYPE
    assert fetched.json() == current

    # The last page finishes the book, when the device read it.
    finished_at = now - timedelta(minutes=1)
    done = await put(delivery, reader, book, progression(pages, finished_at))
    assert done.json()["locator"]["locations"] == {"position": pages, "totalProgression": 1.0}
    shelf = await delivery.http.get("/v1/reading/me", headers=reader.headers)
    [row] = [r for r in shelf.json() if r["book_id"] == book]
    assert datetime.fromisoformat(row["completed_at"]) == finished_at

    # A page turn online is newer than any progression made before it.
    turned = await delivery.http.put(
        f"/v1/reading/{book}/progress",
        json={"page": pages, "total_pages": pages},
        headers=reader.headers,
    )
    assert turned.status_code == 200, turned.text
    later = await put(delivery, reader, book, progression(pages, finished_at))
    assert later.status_code == 200  # not newer than the stored time, but equal: taken


async def test_bad_progressions_are_refused_and_only_readers_of_the_book_store_one(
    access: AccessHarness, content: ContentHarness, delivery: DeliveryHarness, book: str
) -> None:
    reader = await access.account(Role.LEARNER)
    now = datetime.now(UTC)
    good = progression(1, now)
    cases: list[tuple[str, dict[str, Any], str | None]] = [
        ("from the future", progression(1, now + timedelta(hours=1)), "in-the-future"),
        # #37 F11: a completion stamped 1971, and a device name that reads backwards.
        ("from 1971", progression(1, datetime(1971, 1, 1, tzinfo=UTC)), "too-old"),
        ("31 days ago", progression(1, now - timedelta(days=31)), "too-old"),
        (
            "bidi in the device name",
            {**good, "device": {"id": "tablet-1", "name": "\u202egnidaer"}},
            None,
        ),
        ("a line break in it", {**good, "device": {"id": "tablet-1", "name": "a\nb"}}, None),
        ("beyond the book", progression(100_000, now), "position-beyond-book"),
        ("no time zone", {**good, "modified": now.replace(tzinfo=None).isoformat()}, None),
        ("device id with a name", {**good, "device": {"id": "Amani's tablet"}}, None),
        ("unknown field", {**good, "user_id": "someone else"}, None),
        ("position as text", {**good, "locator": {"locations": {"position": "3"}}}, None),
        ("negative position", {**good, "locator": {"locations": {"position": -1}}}, None),
    ]
    for why, body, code in cases:
        answer = await put(delivery, reader, book, body)
        assert answer.status_code == 422, (why, answer.text)
        assert_problem(answer, 422, code)
    path = f"/v1/reading/{book}/progression"
    assert_problem(await delivery.http.get(path, headers=reader.headers), 404)  # none taken

    assert_problem(await delivery.http.put(path, json=good), 401)
    service = await access.service_token("content")
    assert_problem(await delivery.http.put(path, json=good, headers=service), 403)
    assert_problem(await delivery.http.get(path, headers=service), 403)
    entitled = await content.book_for_readers("entitled")
    other = f"/v1/reading/{entitled['id']}/progression"

    async def refused() -> bool:
        answer = await delivery.http.put(other, json=good, headers=reader.headers)
        return answer.status_code == 403

    await eventually(refused, timeout=45, what="the entitled book in delivery, refused")
    assert_problem(await delivery.http.get(other, headers=reader.headers), 403)
