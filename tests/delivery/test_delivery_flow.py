"""The delivery hot path end to end: content publishes, its event reaches delivery
and access through SNS/SQS, a learner is entitled by access, gets a link, and the
PDF downloads from the emulator through it; revoked or unpublished, no new link.
Reading progress and completion reach the metrics queue."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from sqlalchemy import func, select

from services.delivery.models import ReadingProgress
from shared.clients.aws import queue_url
from shared.contracts.roles import Role
from tests.harness.access import AccessHarness, Account
from tests.harness.content import PDF, ContentHarness
from tests.harness.delivery import DeliveryHarness, delivery_settings, start_delivery
from tests.support import assert_problem, eventually, fast_path_answers, tables_holding

# Also run against LocalStack by `make test` (TEST_AWS=localstack pytest -m e2e).
pytestmark = pytest.mark.e2e


def link_expiry(url: str) -> float:
    """When an S3 presigned link stops working: X-Amz-Date plus X-Amz-Expires."""
    query = parse_qs(urlsplit(url).query)
    signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return signed.timestamp() + int(query["X-Amz-Expires"][0])


async def link(delivery: DeliveryHarness, reader: Account, book_id: str) -> httpx.Response:
    return await delivery.http.post(
        "/v1/deliveries", json={"book_id": book_id}, headers=reader.headers
    )


# The volunteer's own file name, which every download is to carry.
UPLOADED_AS = "Маша и медведь (2).pdf"


async def entitled_book(
    content: ContentHarness, delivery: DeliveryHarness, access_level: str = "entitled"
) -> dict[str, Any]:
    return await content.book_for_readers(access_level, upload_filename=UPLOADED_AS)


async def test_an_entitled_learner_downloads_the_pdf_and_loses_it_on_revoke_and_unpublish(
    access: AccessHarness, content: ContentHarness, delivery: DeliveryHarness, workers: None
) -> None:
    learner = await access.account(Role.LEARNER)
    teacher = await access.account(Role.TEACHER)
    admin = await access.account(Role.CONTENT_ADMIN)
    book = await entitled_book(content, delivery)

    # Until delivery hears of the publication, the book does not exist for it.
    async def known_to_delivery() -> bool:
        return (await link(delivery, learner, book["id"])).status_code != 404

    await eventually(known_to_delivery, timeout=45, what="book.published in delivery")
    refused = await link(delivery, learner, book["id"])
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("/decision-denied")

    # Access must know it is published before a teacher may grant it.
    async def granted() -> bool:
        response = await access.http.post(
            "/v1/entitlements",
            json={
                "user_id": str(learner.id),
                "book_id": book["id"],
                "source": "teacher_assignment",
            },
            headers=teacher.headers,
        )
        return response.status_code == 201

    await eventually(granted, timeout=45, what="book.published in access, then the grant")

    # Delivery hears of the grant through entitlement.granted: within moments.
    async def opens() -> bool:
        return (await link(delivery, learner, book["id"])).status_code == 200

    await eventually(opens, timeout=5, what="entitlement.granted in delivery")
    issued = await link(delivery, learner, book["id"])
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["signer"] == "s3"
    assert body["method"] == "GET"
    assert "X-Amz-Expires=" in body["url"]
    assert "versionId=" in body["url"]
    async with httpx.AsyncClient() as browser:
        pdf = await browser.get(body["url"])
    assert pdf.status_code == 200
    assert pdf.content == PDF
    assert pdf.headers["content-type"] == "application/pdf"
    # The upload's file name, not the book's id (RFC 6266: UTF-8, with an ASCII stand-in).
    assert pdf.headers["content-disposition"] == (
        'inline; filename="____ _ _______ (2).pdf"; '
        "filename*=UTF-8''%D0%9C%D0%B0%D1%88%D0%B0%20%D0%B8%20"
        "%D0%BC%D0%B5%D0%B4%D0%B2%D0%B5%D0%B4%D1%8C%20%282%29.pdf"
    )
    opened = [
        e for e in await delivery.outbox("delivery.issued") if e.data["book_id"] == book["id"]
    ]
    # Every link answered is recorded: the one the wait above got, and this one.
    assert [e.data["user_id"] for e in opened] == [str(learner.id)] * 2

    # The lite edition is the same book: once it exists, the entitled learner gets
    # it and another learner is refused by the same decision, never told a format.
    async def lite(reader: Account) -> httpx.Response:
        return await delivery.http.post(
            "/v1/deliveries",
            json={"book_id": book["id"], "format": "pdf-lite"},
            headers=reader.headers,
        )

    async def lite_ready() -> bool:
        return (await lite(learner)).status_code == 200

    await eventually(lite_ready, timeout=60, what="book.processed in delivery")
    stranger = await access.account(Role.LEARNER)
    refused_fast = await fast_path_answers(delivery.http, "POST", "/v1/deliveries", 403)
    assert_problem(await lite(stranger), 403, "decision-denied")
    assert await fast_path_answers(delivery.http, "POST", "/v1/deliveries", 403) == (
        refused_fast + 1
    )

    # Revoked: refused within 2 s (entitlement.revoked reaches delivery's read model).
    [grant] = (
        await access.http.get(
            "/v1/entitlements",
            params={"user_id": str(learner.id), "book_id": book["id"]},
            headers=admin.headers,
        )
    ).json()["items"]
    revoked = await access.http.delete(f"/v1/entitlements/{grant['id']}", headers=admin.headers)
    assert revoked.status_code == 200, revoked.text

    async def refused_again() -> bool:
        return (await link(delivery, learner, book["id"])).status_code == 403

    await eventually(refused_again, timeout=2, what="the revocation, within 2 s")

    # A BOOK_MANAGER reads every published book; demoted, they are refused within
    # 2 s, though their token still says BOOK_MANAGER (role.assigned reaches delivery).
    # Promoted as in production, through role.assigned: a role written straight into
    # access's table (the fixture's shortcut) would reach delivery only as the
    # LEARNER the account registered as, however fast that event arrives.
    root = await access.account(Role.ADMIN)
    learner_first = await access.account(Role.LEARNER)
    promoted = await access.http.put(
        f"/v1/users/{learner_first.id}/role", json={"role": "BOOK_MANAGER"}, headers=root.headers
    )
    assert promoted.status_code == 200, promoted.text
    signed_in = (await access.login(learner_first.email)).json()
    manager = dataclasses.replace(
        learner_first, role=Role.BOOK_MANAGER, token=signed_in["access_token"]
    )

    async def manager_reads() -> bool:
        return (await link(delivery, manager, book["id"])).status_code == 200

    await eventually(manager_reads, timeout=5, what="role.assigned in delivery")
    demoted = await access.http.put(
        f"/v1/users/{manager.id}/role", json={"role": "LEARNER"}, headers=root.headers
    )
    assert demoted.status_code == 200, demoted.text

    async def demotion_counts() -> bool:
        return (await link(delivery, manager, book["id"])).status_code == 403

    await eventually(demotion_counts, timeout=2, what="the demotion, within 2 s")

    # Unpublished: no link for anyone once delivery hears of it.
    await content.http.post(
        f"/v1/books/{book['id']}/unpublish",
        headers=(await content.account(Role.CONTENT_ADMIN)).headers,
    )

    async def gone() -> bool:
        return (await link(delivery, admin, book["id"])).status_code == 404

    await eventually(gone, timeout=45, what="book.unpublished in delivery")
    # A link issued before keeps working until it expires (the edition's object
    # stays): a reader who opened the book may finish it, as when a newer version
    # of the story retires this one.
    async with httpx.AsyncClient() as browser:
        still = await browser.get(body["url"])
    assert still.status_code == 200
    assert still.content == PDF


async def test_a_class_assignment_opens_a_book_for_a_child_without_email_until_they_leave(
    access: AccessHarness, content: ContentHarness, delivery: DeliveryHarness, workers: None
) -> None:
    """#19: a teacher's class account gets links to the book assigned to its class,
    through entitlement.granted; taken out of the class, the child is refused within
    2 s, and keeps the book bought for them."""
    teacher, admin = await access.account(Role.TEACHER), await access.account(Role.ADMIN)
    assigned_book = await entitled_book(content, delivery)
    bought_book = await entitled_book(content, delivery)
    school_class, child, reader = await access.class_account(teacher, "Neema")

    # Access must know the books are published before it assigns or sells them.
    async def assigned() -> bool:
        answer = await access.http.post(
            f"/v1/classes/{school_class['id']}/assignments",
            json={"book_id": assigned_book["id"]},
            headers=teacher.headers,
        )
        return answer.status_code == 201

    await eventually(assigned, timeout=45, what="book.published in access, then the assignment")

    async def bought() -> bool:
        answer = await access.http.post(
            "/v1/entitlements",
            json={"user_id": child["user_id"], "book_id": bought_book["id"], "source": "purchase"},
            headers=admin.headers,
        )
        return answer.status_code == 201

    await eventually(bought, timeout=45, what="book.published in access, then the purchase")

    async def opens(book_id: str) -> bool:
        return (await link(delivery, reader, book_id)).status_code == 200

    await eventually(
        lambda: opens(assigned_book["id"]), timeout=45, what="the assignment in delivery"
    )
    await eventually(lambda: opens(bought_book["id"]), timeout=5, what="the purchase in delivery")

    out = await access.http.delete(
        f"/v1/classes/{school_class['id']}/learners/{child['user_id']}", headers=teacher.headers
    )
    assert out.status_code == 204, out.text

    async def refused() -> bool:
        return (await link(delivery, reader, assigned_book["id"])).status_code == 403

    await eventually(refused, timeout=2, what="leaving the class, within 2 s")
    assert (await link(delivery, reader, bought_book["id"])).status_code == 200


async def test_an_erased_learner_leaves_nothing_of_theirs_in_any_service(
    access: AccessHarness, content: ContentHarness, delivery: DeliveryHarness, workers: None
) -> None:
    """#19: erased by their teacher, a child's name is in no service's store, their
    reading is gone from delivery, and their token opens nothing any more."""
    teacher = await access.account(Role.TEACHER)
    book = await entitled_book(content, delivery, access_level="free")
    name = f"Achieng Otieno {uuid.uuid4().hex[:6]}"
    _, child, reader = await access.class_account(teacher, name)

    async def reads() -> bool:
        answer = await delivery.http.put(
            f"/v1/reading/{book['id']}/progress",
            json={"page": 3, "total_pages": 10},
            headers=reader.headers,
        )
        return answer.status_code == 200

    await eventually(reads, timeout=45, what="the book and the child in delivery")
    shelf = await delivery.http.get("/v1/reading/me", headers=reader.headers)
    assert [r["book_id"] for r in shelf.json()] == [book["id"]]

    erased = await access.http.delete(f"/v1/users/{child['user_id']}", headers=teacher.headers)
    assert erased.status_code == 204, erased.text

    # Signed out everywhere at once (the session is on the deny-list).
    async def signed_out() -> bool:
        return (await link(delivery, reader, book["id"])).status_code == 401

    await eventually(signed_out, timeout=2, what="the erased session refused by delivery")

    async def reading_gone() -> bool:
        async with delivery.resources.session_factory() as session:
            left = await session.scalar(
                select(func.count())
                .select_from(ReadingProgress)
                .where(ReadingProgress.user_id == reader.id)
            )
        return left == 0

    await eventually(reading_gone, timeout=45, what="user.erased in delivery")
    for harness in (access, content, delivery):
        held = await tables_holding(harness.resources.session_factory, name, child["username"])
        assert held == [], (harness, held)


async def test_a_learner_on_a_slow_connection_gets_the_lite_edition(
    access: AccessHarness, content: ContentHarness, delivery: DeliveryHarness, workers: None
) -> None:
    """#21: once content's worker has processed a publication, delivery signs its lite
    edition on request; until then, and for a newer publication until that one is
    processed, a 409 `format-not-ready` (never the older edition's lite file)."""
    learner = await access.account(Role.LEARNER)
    admin = await content.account(Role.CONTENT_ADMIN)
    book = await entitled_book(content, delivery, access_level="free")

    async def lite_link() -> httpx.Response:
        return await delivery.http.post(
            "/v1/deliveries",
            json={"book_id": book["id"], "format": "pdf-lite"},
            headers=learner.headers,
        )

    async def lite_ready() -> bool:
        answer = await lite_link()
        if answer.status_code == 409:
            assert_problem(answer, 409, "format-not-ready")
        return answer.status_code == 200

    await eventually(lite_ready, timeout=60, what="book.processed in delivery")
    issued = (await lite_link()).json()
    described = (await content.http.get(f"/v1/books/{book['id']}")).json()
    sizes = {f["format"]: f["size_bytes"] for f in described["formats"]}
    first_whole = (await link(delivery, learner, book["id"])).json()["url"]
    async with httpx.AsyncClient() as browser:
        lite = await browser.get(issued["url"])
        whole = await browser.get(first_whole)
    assert lite.status_code == 200, lite.text[:300]
    assert lite.content.startswith(b"%PDF-")
    assert len(lite.content) == sizes["pdf-lite"]
    assert whole.content == PDF
    assert len(whole.content) == sizes["pdf"]
    # The volunteer's file name, marked as the lite edition.
    assert lite.headers["content-disposition"].endswith("%282%29%20%28lite%29.pdf")

    # A format nobody makes is a problem, on the fast path and off it.
    for body in ({"book_id": book["id"], "format": "epub"}, {"book_id": book["id"], "format": 1}):
        wrong = await delivery.http.post("/v1/deliveries", json=body, headers=learner.headers)
        assert_problem(wrong, 422)

    # Republished: the old lite edition is not served for the new publication.
    unpublished = await content.http.post(
        f"/v1/books/{book['id']}/unpublish", headers=admin.headers
    )
    assert unpublished.status_code == 200, unpublished.text
    again = await content.http.post(f"/v1/books/{book['id']}/publish", headers=admin.headers)
    assert again.status_code == 200, again.text

    async def new_edition_known() -> bool:
        answer = await link(delivery, learner, book["id"])
        return answer.status_code == 200 and (
            urlsplit(answer.json()["url"]).path != urlsplit(first_whole).path
        )

    await eventually(new_edition_known, timeout=45, what="the new edition in delivery")
    await eventually(lite_ready, timeout=60, what="the new edition processed")
    newer = (await lite_link()).json()
    assert urlsplit(newer["url"]).path != urlsplit(issued["url"]).path


async def test_links_never_outlive_the_token_and_bad_requests_are_problems(
    access: AccessHarness, content: ContentHarness, delivery: DeliveryHarness, workers: None
) -> None:
    reader = await access.account(Role.BOOK_MANAGER)  # may read every published book
    book = await entitled_book(content, delivery, access_level="free")

    async def issued() -> bool:
        return (await link(delivery, reader, book["id"])).status_code == 200

    await eventually(issued, timeout=45, what="the book in delivery")
    before = time.time()
    body = (await link(delivery, reader, book["id"])).json()
    # 300 s, its expiry rounded down to a 30 s step: readers of the book in the same
    # step share the link (the same URL, signed once).
    expires = link_expiry(body["url"])
    assert expires == datetime.fromisoformat(body["expires_at"]).timestamp()
    assert expires % 30 == 0
    assert before + 270 - 1 <= expires <= before + 300
    again = (await link(delivery, reader, book["id"])).json()
    assert again["url"] == body["url"] or link_expiry(again["url"]) > expires
    # A lifetime longer than the token's is cut to the token's.
    long_lived = delivery_settings(
        access, link_seconds=3600, database_schema=delivery.settings.database_schema
    )
    async with AsyncExitStack() as stack:
        other = await start_delivery(stack, long_lived)
        cut = (
            await other.http.post(
                "/v1/deliveries", json={"book_id": book["id"]}, headers=reader.headers
            )
        ).json()
    token_expiry = jwt.decode(reader.token, options={"verify_signature": False})["exp"]
    cut_expires = link_expiry(cut["url"])
    assert cut_expires == datetime.fromisoformat(cut["expires_at"]).timestamp()
    assert before + 800 < cut_expires <= token_expiry
    assert (
        await delivery.http.post("/v1/deliveries", json={"book_id": book["id"]})
    ).status_code == 401
    for bad in ({"book_id": "nope"}, {}, {"book_id": book["id"], "user_id": str(reader.id)}):
        response = await delivery.http.post("/v1/deliveries", json=bad, headers=reader.headers)
        assert response.status_code == 422, response.text
    unknown = await link(delivery, reader, str(uuid.uuid4()))
    assert_problem(unknown, 404)


async def test_reading_progress_is_monotonic_and_its_events_reach_metrics(
    access: AccessHarness, content: ContentHarness, delivery: DeliveryHarness, workers: None
) -> None:
    reader = await access.account(Role.BOOK_MANAGER)
    book = await entitled_book(content, delivery, access_level="free")
    url = f"/v1/reading/{book['id']}/progress"

    async def put(page: int, total: int = 20) -> httpx.Response:
        return await delivery.http.put(
            url, json={"page": page, "total_pages": total}, headers=reader.headers
        )

    await eventually(lambda: _status(put(1), 200), timeout=45, what="the book in delivery")
    for page in range(2, 21):
        assert (await put(page)).status_code == 200
    assert (await put(5)).json()["page"] == 20  # going back changes nothing
    assert (await put(20)).json()["completed_at"] is not None
    assert (await put(21)).status_code == 422
    # #13.14: the first report fixed the length: another one is refused, and no
    # report can make the percentage exceed 100.
    for page, total in ((1, 1), (500, 1000), (20, 21)):
        changed = await put(page, total)
        assert changed.status_code == 409, changed.text
        assert changed.json()["type"].endswith("/total-pages-mismatch")
        assert changed.json()["total_pages"] == 20
    mine = (await delivery.http.get("/v1/reading/me", headers=reader.headers)).json()
    [progress] = [p for p in mine if p["book_id"] == book["id"]]
    assert progress["percent"] == 100
    assert progress["total_pages"] == 20

    progressed = [
        e for e in await delivery.outbox("reading.progressed") if e.data["book_id"] == book["id"]
    ]
    completed = [
        e for e in await delivery.outbox("reading.completed") if e.data["book_id"] == book["id"]
    ]
    assert len(completed) == 1
    # 20 page turns, one event per 10 % step: coalesced, not one per page.
    assert len(progressed) == 10

    # Both reach the metrics queue through SNS (delivery's relay runs in the worker).
    sqs = delivery.resources.aws.sqs
    metrics_queue = await queue_url(sqs, delivery.settings.resource_names.queue("metrics"))
    seen: set[str] = set()

    async def reached_metrics() -> bool:
        response = await sqs.receive_message(
            QueueUrl=metrics_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in response.get("Messages", []):
            event = json.loads(message["Body"])
            if event["data"].get("book_id") == book["id"]:
                seen.add(event["type"])
        return {"reading.completed", "reading.progressed"} <= seen

    await eventually(reached_metrics, timeout=30, what="reading events in the metrics queue")


async def _status(response: Any, expected: int) -> bool:
    return bool((await response).status_code == expected)


async def test_the_openapi_document_describes_every_route_with_its_errors(
    delivery: DeliveryHarness, access: AccessHarness
) -> None:
    document = (await delivery.http.get("/openapi.json")).json()
    routes = {
        ("/v1/deliveries", "post"),
        ("/v1/deliveries/cookies", "post"),
        ("/v1/reading/{book_id}/progress", "put"),
        ("/v1/reading/me", "get"),
    }
    for path, method in routes:
        operation = document["paths"][path][method]
        assert operation["summary"]
        assert operation.get("security") == [{"bearer": []}], path
        assert {"401", "422"} <= set(operation["responses"]), path
    # A platform service's credential is not a reader.
    service = await access.service_token("content")
    response = await delivery.http.post(
        "/v1/deliveries", json={"book_id": str(uuid.uuid4())}, headers=service
    )
    assert response.status_code == 403
