"""#20 reading done offline: a device uploads 300 events when it is back online;
uploaded twice, they count once, each in the hour it happened (metrics, end to
end through SNS/SQS); events from the future, too old, or on books the reader may
not read are refused one by one; a malformed batch takes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest

from shared.contracts.roles import Role
from tests.harness.access import AccessHarness, Account
from tests.harness.content import ContentHarness
from tests.harness.delivery import DeliveryHarness
from tests.harness.metrics import MetricsHarness
from tests.support import assert_problem, eventually

H = timedelta(hours=1)
PAGES = 50


def event(kind: str, book: str, at: datetime, **pages: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": kind, "book_id": book, "at": at.isoformat(), **pages}


async def upload(delivery: DeliveryHarness, reader: Account, events: list[Any]) -> httpx.Response:
    return await delivery.http.post(
        "/v1/reading/events",
        json={"device_id": "tablet-3.school_7", "events": events},
        headers=reader.headers,
    )


async def opens_link(delivery: DeliveryHarness, reader: Account, book_id: str) -> bool:
    answer = await delivery.http.post(
        "/v1/deliveries", json={"book_id": book_id}, headers=reader.headers
    )
    return answer.status_code == 200


@pytest.fixture(scope="module")
async def books(
    access: AccessHarness, content: ContentHarness, delivery: DeliveryHarness, workers: None
) -> dict[str, str]:
    """A free book delivery knows, and an entitled one nobody was given."""
    free = await content.book_for_readers("free")
    entitled = await content.book_for_readers("entitled")
    somebody = await access.account(Role.LEARNER)
    await eventually(
        partial(opens_link, delivery, somebody, free["id"]), timeout=45, what="the free book"
    )

    async def entitled_known() -> bool:
        answer = await delivery.http.post(
            "/v1/deliveries", json={"book_id": entitled["id"]}, headers=somebody.headers
        )
        return answer.status_code == 403

    await eventually(entitled_known, timeout=45, what="the entitled book in delivery")
    return {"free": free["id"], "entitled": entitled["id"]}


async def test_an_offline_batch_uploaded_twice_counts_once_in_the_hours_it_happened(
    access: AccessHarness,
    delivery: DeliveryHarness,
    metrics: MetricsHarness,
    books: dict[str, str],
) -> None:
    reader, admin = await access.account(Role.LEARNER), await access.account(Role.CONTENT_ADMIN)
    free, entitled = books["free"], books["entitled"]
    now = datetime.now(UTC)
    base = now.replace(minute=0, second=0, microsecond=0) - 3 * 24 * H
    # 240 opens, 20 in each of 12 hours: one open a reader, book and hour counts
    # (#37 F10), the other 19 of each hour are duplicates. Then 48 page turns and
    # 2 completions in hour 13.
    opens = [
        event("open", free, base + hours * H + timedelta(minutes=2 * n))
        for hours in range(12)
        for n in range(20)
    ]
    taken = [e for n, e in enumerate(opens) if n % 20 == 0]
    again_in_the_hour = [e for n, e in enumerate(opens) if n % 20 != 0]
    taken += [
        event("progress", free, base + 13 * H + timedelta(seconds=30 * page), page=page,
              total_pages=PAGES)
        for page in range(1, 49)
    ]  # fmt: skip
    first_done = base + 13 * H + timedelta(minutes=40)
    taken += [
        event("complete", free, first_done, total_pages=PAGES),
        event("complete", free, first_done + timedelta(minutes=5), total_pages=PAGES),
    ]
    refused = {
        "in-the-future": [event("open", free, now + H), event("open", free, now + 2 * H)],
        "too-old": [event("open", free, now - timedelta(days=31))],
        "unknown-book": [event("open", str(uuid.uuid4()), base)],
        "decision-denied": [event("open", entitled, base) for _ in range(6)],
    }
    batch = sorted(taken + again_in_the_hour, key=lambda e: str(e["at"]))
    batch += [e for group in refused.values() for e in group]
    assert len(batch) == 300

    first = await upload(delivery, reader, batch)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["accepted"], body["duplicates"], body["refused"]) == (62, 228, 10)
    statuses = {r["id"]: r for r in body["results"]}
    assert [r["id"] for r in body["results"]] == [e["id"] for e in batch]  # in order
    assert all(statuses[e["id"]]["status"] == "accepted" for e in taken)
    assert all(statuses[e["id"]]["status"] == "duplicate" for e in again_in_the_hour)
    for reason, group in refused.items():
        for e in group:
            assert statuses[e["id"]]["status"] == "refused"
            assert statuses[e["id"]]["reason"] == reason
            assert statuses[e["id"]]["detail"]

    # Metrics counts each in its hour, however late it was uploaded.
    async def series(metric: str) -> list[int]:
        found = await metrics.get(
            "/v1/metrics/timeseries",
            admin.headers,
            metric=metric,
            interval="hour",
            book_id=free,
            **{"from": base.isoformat(), "to": (base + 15 * H).isoformat()},
        )
        return [point["value"] for point in found["points"]]

    expected_opens = [1] * 12 + [0] * 3
    expected_completions = [0] * 13 + [1] + [0]

    async def counted() -> bool:
        return await series("opens") == expected_opens

    await eventually(counted, timeout=60, what="the offline opens in metrics")
    await eventually(
        lambda: _equal(series("completions"), expected_completions), timeout=30, what="completion"
    )

    # The same batch again, as a device retrying after a lost answer: nothing changes.
    again = await upload(delivery, reader, batch)
    assert again.status_code == 200, again.text
    repeat = again.json()
    assert (repeat["accepted"], repeat["duplicates"], repeat["refused"]) == (0, 290, 10)
    await eventually(metrics.drained, timeout=30, what="anything the retry sent")
    assert await series("opens") == expected_opens
    assert await series("completions") == expected_completions

    # The reader's progress: the furthest page, finished when the first completion
    # happened on the device.
    shelf = await delivery.http.get("/v1/reading/me", headers=reader.headers)
    [progress] = [p for p in shelf.json() if p["book_id"] == free]
    assert progress["page"] == PAGES
    assert datetime.fromisoformat(progress["completed_at"]) == first_done


async def _equal(found: Any, expected: list[int]) -> bool:
    return bool(await found == expected)


async def test_reading_progress_offline_follows_the_online_rules(
    access: AccessHarness, delivery: DeliveryHarness, books: dict[str, str]
) -> None:
    """The furthest page wins whatever the order; the book's length is the first one
    reported (another is refused for that event only); the same id twice in one
    batch is taken once."""
    reader = await access.account(Role.LEARNER)
    free, now = books["free"], datetime.now(UTC)
    online = await delivery.http.put(
        f"/v1/reading/{free}/progress",
        json={"page": 10, "total_pages": 40},
        headers=reader.headers,
    )
    assert online.status_code == 200, online.text
    behind = event("progress", free, now - 2 * H, page=5, total_pages=40)
    ahead = event("progress", free, now - 3 * H, page=20, total_pages=40)
    longer = event("progress", free, now - H, page=30, total_pages=60)
    answer = await upload(delivery, reader, [behind, ahead, longer, ahead])
    assert answer.status_code == 200, answer.text
    results = [(r["status"], r["reason"]) for r in answer.json()["results"]]
    assert results == [
        ("accepted", None),
        ("accepted", None),
        ("refused", "total-pages-mismatch"),
        ("duplicate", None),
    ]
    shelf = await delivery.http.get("/v1/reading/me", headers=reader.headers)
    [progress] = [p for p in shelf.json() if p["book_id"] == free]
    assert (progress["page"], progress["total_pages"]) == (20, 40)
    bad = [
        event("progress", free, now, total_pages=40),  # no page
        event("complete", free, now),  # no length
        event("progress", free, now, page=41, total_pages=40),
    ]
    answer = await upload(delivery, reader, bad)
    reasons = [r["reason"] for r in answer.json()["results"]]
    assert reasons == ["page-required", "total-pages-required", "page-beyond-book"]


async def test_a_malformed_batch_takes_nothing_and_only_readers_upload(
    access: AccessHarness, delivery: DeliveryHarness, books: dict[str, str]
) -> None:
    reader = await access.account(Role.LEARNER)
    free, now = books["free"], datetime.now(UTC)
    good = event("progress", free, now, page=3, total_pages=30)
    oversized = [event("open", free, now) for _ in range(501)]
    naive = {**event("open", free, now), "at": now.replace(tzinfo=None).isoformat()}
    cases: list[tuple[str, Any]] = [
        ("oversized", {"device_id": "d1", "events": oversized}),
        ("empty", {"device_id": "d1", "events": []}),
        ("malformed id", {"device_id": "d1", "events": [good, {**good, "id": "not-an-id"}]}),
        ("no time zone", {"device_id": "d1", "events": [good, naive]}),
        ("unknown type", {"device_id": "d1", "events": [good, {**good, "type": "skim"}]}),
        ("page as text", {"device_id": "d1", "events": [{**good, "page": "3"}]}),
        ("device id", {"device_id": "Amani's tablet", "events": [good]}),
        ("extra field", {"device_id": "d1", "events": [{**good, "user_id": str(uuid.uuid4())}]}),
    ]
    for why, body in cases:
        answer = await delivery.http.post("/v1/reading/events", json=body, headers=reader.headers)
        assert answer.status_code == 422, (why, answer.text)
        assert_problem(answer, 422)
    shelf = await delivery.http.get("/v1/reading/me", headers=reader.headers)
    assert [p for p in shelf.json() if p["book_id"] == free] == []  # nothing was taken

    # Who may upload: any signed-in person reading; nobody else, and no service.
    path, body = "/v1/reading/events", {"device_id": "d1", "events": [event("open", free, now)]}
    assert_problem(await delivery.http.post(path, json=body), 401)
    service = await access.service_token("content")
    assert_problem(await delivery.http.post(path, json=body, headers=service), 403)
    for role in Role:
        account = await access.account(role)
        one = {"device_id": "d1", "events": [event("open", free, now)]}
        answer = await delivery.http.post(path, json=one, headers=account.headers)
        assert answer.status_code == 200, (role, answer.text)
        assert answer.json()["accepted"] == 1, role


async def test_one_reader_cannot_make_a_book_the_most_read(
    access: AccessHarness,
    content: ContentHarness,
    delivery: DeliveryHarness,
    metrics: MetricsHarness,
    books: dict[str, str],
) -> None:
    """#37 F10: three batches of 500 made-up opens (three readers) took a book from
    nowhere to first in the public "most read" feed. Offline opens now take places in
    the reader's link budget, one per reader, book and hour counts, and "most read"
    ranks by distinct readers: four readers who opened a book once outrank them."""
    pushed = (await content.book_for_readers("free"))["id"]
    liked = (await content.book_for_readers("free"))["id"]
    somebody = await access.account(Role.LEARNER)
    for book in (pushed, liked):
        await eventually(
            partial(opens_link, delivery, somebody, book), timeout=45, what="the new book"
        )
    now = datetime.now(UTC)
    budget = delivery.settings.links_per_minute
    for _ in range(3):
        pusher = await access.account(Role.LEARNER)
        made_up = [event("open", pushed, now - (n + 1) * H) for n in range(500)]
        answer = await upload(delivery, pusher, made_up)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["accepted"] <= budget
        reasons = {r["reason"] for r in body["results"] if r["status"] == "refused"}
        assert reasons == {"too-many-opens"}
    for _ in range(4):
        reader = await access.account(Role.LEARNER)
        assert await opens_link(delivery, reader, liked)
    admin = await access.account(Role.CONTENT_ADMIN)

    async def ranked() -> list[dict[str, Any]]:
        found = await metrics.get("/v1/metrics/most-read", admin.headers, limit=100)
        return [b for b in found["books"] if b["book_id"] in (pushed, liked)]

    async def both_counted() -> bool:
        rows = await ranked()
        return [(b["book_id"], b["readers"]) for b in rows] == [(liked, 5), (pushed, 4)]

    await eventually(both_counted, timeout=60, what="both books' readers in metrics")
    pushed_row = (await ranked())[1]
    assert pushed_row["opens"] <= 3 * budget + 1
