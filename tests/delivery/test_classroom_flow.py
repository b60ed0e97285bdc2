"""#19 end to end, over real HTTP between the four services: a teacher makes a class
of 30 children without email, assigns a free and an entitled book; the whole class
signs in from one school address within a minute, everyone opens both books, some
read on and finish; the class report (JSON and CSV) and the per-class figures are
exact; a child taken out of the class loses the assigned book within 2 s and keeps
the one bought for them; an erased child's name is in no service's store."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from functools import partial
from typing import Any

import httpx
from sqlalchemy import func, select

from services.access.class_report import CSV_COLUMNS
from services.access.settings import AccessSettings
from services.metrics.models import ClassMembership
from shared.contracts.roles import Role
from tests.harness.access import AccessHarness, Account, access_settings, running_access
from tests.harness.content import ContentHarness
from tests.harness.delivery import DeliveryHarness
from tests.harness.metrics import MetricsHarness
from tests.support import assert_problem, eventually, tables_holding

LEARNERS = 30
# A child's name a spreadsheet would run as a formula: the CSV quotes it.
FORMULA_NAME = "=HYPERLINK(1)"
# Who reads on: the first 10 reach page 5 of 10 of the free book and the first 5
# finish it; the first 3 reach page 3 of 12 of the entitled one, the first 2 finish.
FREE_PAGES, PAID_PAGES = 10, 12


def expected_percent(index: int, book: str) -> int:
    if book == "free":
        return 100 if index < 5 else 50 if index < 10 else 0
    return 100 if index < 2 else 25 if index < 3 else 0


async def link(delivery: DeliveryHarness, reader: Account, book_id: str) -> int:
    answer = await delivery.http.post(
        "/v1/deliveries", json={"book_id": book_id}, headers=reader.headers
    )
    return answer.status_code


async def read(
    delivery: DeliveryHarness, reader: Account, book_id: str, page: int, of: int
) -> None:
    answer = await delivery.http.put(
        f"/v1/reading/{book_id}/progress",
        json={"page": page, "total_pages": of},
        headers=reader.headers,
    )
    assert answer.status_code == 200, answer.text


async def report(access: AccessHarness, teacher: Account, class_id: str) -> dict[str, Any]:
    answer = await access.http.get(f"/v1/classes/{class_id}/progress", headers=teacher.headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    return body


def school_access(access: AccessHarness, database_url: str, moto_url: str) -> AccessSettings:
    """Access as deployed (its real per-address sign-in limit), behind a trusted load
    balancer that names the school's one address."""
    defaults = AccessSettings.model_fields
    return access_settings(
        database_url,
        moto_url,
        database_schema=access.settings.database_schema,
        trusted_proxies=["127.0.0.1/32"],
        login_failures_per_ip=defaults["login_failures_per_ip"].default,
        class_login_failures_per_account=defaults["class_login_failures_per_account"].default,
    )


async def test_a_class_reads_its_books_and_its_teacher_sees_exactly_who_did(
    access: AccessHarness,
    content: ContentHarness,
    delivery: DeliveryHarness,
    metrics: MetricsHarness,
    workers: None,
    database_url: str,
    moto_url: str,
) -> None:
    teacher, admin = await access.account(Role.TEACHER), await access.account(Role.ADMIN)
    books = {
        "free": await content.book_for_readers("free"),
        "paid": await content.book_for_readers("entitled"),
    }
    bought = await content.book_for_readers("entitled")

    # --- the class, its 30 accounts and two assignments ------------------------------------
    made = await access.http.post(
        "/v1/classes", json={"name": "Class 4C", "grade": "4"}, headers=teacher.headers
    )
    assert made.status_code == 201, made.text
    school_class = made.json()
    class_id, code = school_class["id"], school_class["join_code"]
    names = [f"Reader {i:02d} {uuid.uuid4().hex[:4]}" for i in range(LEARNERS - 1)]
    names.append(FORMULA_NAME)
    added = await access.http.post(
        f"/v1/classes/{class_id}/learners", json={"display_names": names}, headers=teacher.headers
    )
    assert added.status_code == 201, added.text
    children = added.json()["learners"]
    assert [c["display_name"] for c in children] == names

    async def assign(book: dict[str, Any]) -> bool:
        answer = await access.http.post(
            f"/v1/classes/{class_id}/assignments",
            json={"book_id": book["id"]},
            headers=teacher.headers,
        )
        return answer.status_code == 201

    for book in books.values():
        await eventually(partial(assign, book), timeout=45, what="book.published in access")

    # --- the whole class signs in from one address within a minute -----------------------
    school = {"X-Forwarded-For": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.9"}
    with running_access(school_access(access, database_url, moto_url)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            started = time.monotonic()
            answers = await asyncio.gather(
                *(
                    http.post(
                        "/v1/auth/class-login",
                        json={"code": code, "username": c["username"], "password": c["password"]},
                        headers=school,
                    )
                    for c in children
                )
            )
            took = time.monotonic() - started
    assert [a.status_code for a in answers] == [200] * LEARNERS, [a.text for a in answers]
    assert took < 60, took
    readers = [
        Account(
            id=uuid.UUID(c["user_id"]),
            email="",
            role=Role.LEARNER,
            token=a.json()["access_token"],
            refresh_token=a.json()["refresh_token"],
        )
        for c, a in zip(children, answers, strict=True)
    ]

    # --- everyone opens both books; some read on ------------------------------------------
    for reader in readers:  # each until delivery has heard of the books and the grants
        for book in books.values():
            await eventually(
                partial(opened, delivery, reader, book["id"]), timeout=45, what="an assigned link"
            )
    for index, reader in enumerate(readers[:10]):
        await read(delivery, reader, books["free"]["id"], 5, FREE_PAGES)
        if index < 5:
            await read(delivery, reader, books["free"]["id"], FREE_PAGES, FREE_PAGES)
    for index, reader in enumerate(readers[:3]):
        await read(delivery, reader, books["paid"]["id"], 3, PAID_PAGES)
        if index < 2:
            await read(delivery, reader, books["paid"]["id"], PAID_PAGES, PAID_PAGES)

    # --- the report and the class's figures are exact --------------------------------------
    def expected_rows(found: dict[str, Any]) -> bool:
        rows = {(r["user_id"], r["book_id"]): r for r in found["rows"]}
        if len(rows) != 2 * LEARNERS or len(found["rows"]) != 2 * LEARNERS:
            return False
        for index, child in enumerate(children):
            for kind, book in books.items():
                row = rows[(child["user_id"], book["id"])]
                percent = expected_percent(index, kind)
                if (
                    row["display_name"] != child["display_name"]
                    or row["username"] != child["username"]
                    or row["title"] != book["title"]
                    or not row["opened"]
                    or row["opens"] != 1
                    or row["progress_percent"] != percent
                    or (row["completed_at"] is not None) != (percent == 100)
                    or row["last_read_at"] is None
                ):
                    return False
        return True

    async def report_is_exact() -> bool:
        return expected_rows(await report(access, teacher, class_id))

    await eventually(report_is_exact, timeout=60, what="the reading in the class report")
    found = await report(access, teacher, class_id)
    assert found["learners"] == LEARNERS
    assert found["name"] == "Class 4C"
    summary = {a["book_id"]: a for a in found["assignments"]}
    assert {k: summary[b["id"]]["completed"] for k, b in books.items()} == {"free": 5, "paid": 2}
    assert all(a["opened"] == LEARNERS and a["not_started"] == [] for a in summary.values())

    # The CSV: the same rows, the same text, one formula-like name quoted.
    for accept, query in (({"Accept": "text/csv"}, {}), ({}, {"format": "csv"})):
        answer = await access.http.get(
            f"/v1/classes/{class_id}/progress",
            headers={**teacher.headers, **accept},
            params=query,
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "text/csv; charset=utf-8"
        assert "attachment" in answer.headers["content-disposition"]
        lines = list(csv.reader(io.StringIO(answer.text)))
        assert lines[0] == CSV_COLUMNS
        assert lines[1:] == [[as_cell(row[c]) for c in CSV_COLUMNS] for row in found["rows"]]
        quoted = [line for line in lines[1:] if line[0].startswith("'")]
        assert {line[0] for line in quoted} == {"'" + FORMULA_NAME}

    figures = await metrics.get(f"/v1/metrics/classes/{class_id}", teacher.headers)
    assert figures["learners"] == LEARNERS
    per_book = {a["book_id"]: a for a in figures["assignments"]}
    for kind, book in books.items():
        completed = 5 if kind == "free" else 2
        assert per_book[book["id"]] | {"assignment_id": None, "assigned_at": None} == {
            "assignment_id": None,
            "assigned_at": None,
            "book_id": book["id"],
            "title": book["title"],
            "due_at": None,
            "learners": LEARNERS,
            "opened": LEARNERS,
            "opens": LEARNERS,
            "completed": completed,
            "completion_rate": completed / LEARNERS,
            "not_started": [],
        }

    # --- another teacher, a learner and nobody see nothing ----------------------------------
    other_teacher = await access.account(Role.TEACHER)
    path = f"/v1/classes/{class_id}/progress"
    assert_problem(await access.http.get(path, headers=other_teacher.headers), 404)
    assert_problem(await access.http.get(path, headers=readers[0].headers), 403)
    assert_problem(await access.http.get(path), 401)
    metrics_path = f"/v1/metrics/classes/{class_id}"
    assert_problem(await metrics.http.get(metrics_path, headers=other_teacher.headers), 404)
    assert_problem(await metrics.http.get(metrics_path, headers=readers[0].headers), 403)

    # --- taken out of the class: the assigned book within 2 s, the bought one stays -------
    leaver, leaver_child = readers[28], children[28]

    async def buy() -> bool:
        answer = await access.http.post(
            "/v1/entitlements",
            json={"user_id": str(leaver.id), "book_id": bought["id"], "source": "purchase"},
            headers=admin.headers,
        )
        return answer.status_code == 201

    await eventually(buy, timeout=45, what="book.published in access, then the purchase")
    await eventually(
        lambda: opened(delivery, leaver, bought["id"]), timeout=45, what="the purchase"
    )
    out = await access.http.delete(
        f"/v1/classes/{class_id}/learners/{leaver.id}", headers=teacher.headers
    )
    assert out.status_code == 204, out.text

    async def refused() -> bool:
        return await link(delivery, leaver, books["paid"]["id"]) == 403

    await eventually(refused, timeout=2, what="the assignment ended within 2 s")
    assert await link(delivery, leaver, bought["id"]) == 200

    # --- erased: the name is in no service's store, the figures count 28 -----------------
    erased_child = children[27]
    gone = await access.http.delete(f"/v1/users/{erased_child['user_id']}", headers=teacher.headers)
    assert gone.status_code == 204, gone.text

    async def learners_now() -> bool:
        now = await metrics.get(f"/v1/metrics/classes/{class_id}", teacher.headers)
        return bool(now["learners"] == LEARNERS - 2)

    await eventually(learners_now, timeout=45, what="the leaver and the erased child in metrics")
    after = await report(access, teacher, class_id)
    assert after["learners"] == LEARNERS - 2
    kept = {r["user_id"] for r in after["rows"]}
    assert erased_child["user_id"] not in kept
    assert leaver_child["user_id"] not in kept
    for harness in (access, content, delivery, metrics):
        held = await tables_holding(
            harness.resources.session_factory,
            erased_child["display_name"],
            erased_child["username"],
        )
        assert held == [], (harness, held)
    async with metrics.resources.session_factory() as session:
        memberships = await session.scalar(
            select(func.count())
            .select_from(ClassMembership)
            .where(
                ClassMembership.user_id == uuid.UUID(erased_child["user_id"]),
                ClassMembership.member.is_(True),
            )
        )
    assert memberships == 0


async def opened(delivery: DeliveryHarness, reader: Account, book_id: str) -> bool:
    return await link(delivery, reader, book_id) == 200


def as_cell(value: Any) -> str:
    """What the CSV must hold for a JSON value of the report (README: class report)."""
    if value is None:
        return ""
    text = {True: "true", False: "false"}[value] if isinstance(value, bool) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
