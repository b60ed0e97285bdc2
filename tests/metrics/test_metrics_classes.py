"""A class's figures (#19): a scripted stream of class and reading events through
SQS into the metrics worker, then the exact figures of `GET
/v1/metrics/classes/{id}`, the same after redelivery in reverse order and after a
rebuild from the log, and who may see them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.metrics.projection import rebuild
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    BookCreated,
    ClassBookAssigned,
    ClassBookUnassigned,
    ClassMemberJoined,
    ClassMemberLeft,
    DeliveryIssued,
    EventData,
    ReadingCompleted,
    ReadingProgressed,
    UserErased,
)
from tests.harness.access import AccessHarness, Account
from tests.harness.metrics import MetricsHarness
from tests.support import assert_problem, eventually

H = timedelta(hours=1)


class SchoolClass:
    """Class C of the test's TEACHER: learners L1..L4 join; L4 leaves, L3 is erased.
    B1 ("Moons") and B2 ("Rivers") stay assigned, B3 is assigned and taken back.
    L1 opens B1 twice, reads to page 5 of 10 and finishes it, and opens B2 once; L2
    opens B1 once and reaches page 3 of 12. L3 and L4 read B1 too, but are no longer
    in the class. Class D, of another teacher, has L1 too."""

    def __init__(self, teacher: uuid.UUID) -> None:
        self.base = datetime.now(UTC).replace(microsecond=0) - 24 * H
        self.teacher, self.other_teacher = teacher, uuid.uuid4()
        self.class_id, self.other_class = uuid.uuid4(), uuid.uuid4()
        self.l1, self.l2, self.l3, self.l4 = (uuid.uuid4() for _ in range(4))
        self.b1, self.b2, self.b3 = (uuid.uuid4() for _ in range(3))
        self.a1, self.a2, self.a3 = (uuid.uuid4() for _ in range(3))
        self.due = self.base + 72 * H
        self.events: list[Envelope] = []

    def at(self, hours: float, data: EventData) -> None:
        self.events.append(Envelope.wrap(data, time=self.base + hours * H))

    def build(self) -> list[Envelope]:
        at, c = self.at, self.class_id
        for book, title in ((self.b1, "Moons"), (self.b2, "Rivers"), (self.b3, "Hills")):
            at(
                0,
                BookCreated(
                    book_id=book,
                    submission_id=uuid.uuid4(),
                    title=title,
                    language="en",
                    access="free",
                ),
            )
        for learner in (self.l1, self.l2, self.l3, self.l4):
            at(0.5, ClassMemberJoined(class_id=c, teacher_id=self.teacher, user_id=learner))
        at(
            0.5,
            ClassMemberJoined(
                class_id=self.other_class, teacher_id=self.other_teacher, user_id=self.l1
            ),
        )
        at(
            0.6,
            ClassBookAssigned(
                assignment_id=self.a1,
                class_id=c,
                teacher_id=self.teacher,
                book_id=self.b1,
                due_at=self.due,
            ),
        )
        at(
            0.7,
            ClassBookAssigned(
                assignment_id=self.a2, class_id=c, teacher_id=self.teacher, book_id=self.b2
            ),
        )
        at(
            0.8,
            ClassBookAssigned(
                assignment_id=self.a3, class_id=c, teacher_id=self.teacher, book_id=self.b3
            ),
        )
        for hours, book, reader in (
            (1, self.b1, self.l1),
            (2, self.b1, self.l1),
            (1, self.b1, self.l2),
            (2, self.b2, self.l1),
            (1, self.b1, self.l3),
            (1, self.b1, self.l4),
            (1, self.b3, self.l2),
        ):
            at(hours, DeliveryIssued(book_id=book, user_id=reader, method="s3"))
        at(2, ReadingProgressed(book_id=self.b1, user_id=self.l1, page=5, total_pages=10))
        at(1.5, ReadingProgressed(book_id=self.b1, user_id=self.l2, page=3, total_pages=12))
        at(1.2, ReadingProgressed(book_id=self.b1, user_id=self.l2, page=2, total_pages=12))
        at(3, ReadingCompleted(book_id=self.b1, user_id=self.l1))
        at(3, ReadingCompleted(book_id=self.b1, user_id=self.l4))
        at(4, ClassBookUnassigned(assignment_id=self.a3, class_id=c, book_id=self.b3))
        at(5, ClassMemberLeft(class_id=c, user_id=self.l4))
        at(6, UserErased(user_id=self.l3, erased_by=self.teacher))
        return self.events  # fmt: skip

    def expected(self) -> dict[str, Any]:
        def t(hours: float) -> str:
            return (self.base + hours * H).isoformat().replace("+00:00", "Z")

        l1, l2 = str(self.l1), str(self.l2)
        learners = sorted([l1, l2])

        def row(
            user: str,
            assignment: uuid.UUID,
            book: uuid.UUID,
            opens: int,
            percent: int,
            completed: str | None,
            last: str | None,
        ) -> dict[str, Any]:
            return {
                "user_id": user, "assignment_id": str(assignment), "book_id": str(book),
                "opened": last is not None, "opens": opens, "progress_percent": percent,
                "completed_at": completed, "last_read_at": last,
            }  # fmt: skip

        b1_rows = {l1: row(l1, self.a1, self.b1, 2, 100, t(3), t(3)),
                   l2: row(l2, self.a1, self.b1, 1, 25, None, t(1.5))}  # fmt: skip
        b2_rows = {l1: row(l1, self.a2, self.b2, 1, 0, None, t(2)),
                   l2: row(l2, self.a2, self.b2, 0, 0, None, None)}  # fmt: skip
        return {
            "class_id": str(self.class_id),
            "learners": 2,
            "assignments": [
                {
                    "assignment_id": str(self.a1), "book_id": str(self.b1), "title": "Moons",
                    "due_at": t(72), "assigned_at": t(0.6), "learners": 2, "opened": 2,
                    "opens": 3, "completed": 1, "completion_rate": 0.5, "not_started": [],
                },
                {
                    "assignment_id": str(self.a2), "book_id": str(self.b2), "title": "Rivers",
                    "due_at": None, "assigned_at": t(0.7), "learners": 2, "opened": 1,
                    "opens": 1, "completed": 0, "completion_rate": 0.0, "not_started": [l2],
                },
            ],
            "reading": [b1_rows[u] for u in learners] + [b2_rows[u] for u in learners],
        }  # fmt: skip


@pytest.fixture(scope="module")
async def school_class(metrics: MetricsHarness, people: dict[str, Account]) -> SchoolClass:
    story = SchoolClass(people["TEACHER"].id)
    await metrics.send(story.build())
    await eventually(
        lambda: figures_are(metrics, people["CONTENT_ADMIN"], story),
        timeout=60,
        what="every class event applied",
    )
    return story


async def figures(metrics: MetricsHarness, account: Account, class_id: uuid.UUID) -> Any:
    found = await metrics.get(f"/v1/metrics/classes/{class_id}", account.headers)
    found.pop("as_of")
    return found


async def figures_are(metrics: MetricsHarness, account: Account, story: SchoolClass) -> bool:
    response = await metrics.http.get(
        f"/v1/metrics/classes/{story.class_id}", headers=account.headers
    )
    if response.status_code != 200:
        return False
    found = response.json()
    found.pop("as_of")
    return bool(found == story.expected())


async def test_the_class_figures_are_exact_for_its_teacher_and_admins(
    metrics: MetricsHarness, people: dict[str, Account], school_class: SchoolClass
) -> None:
    for role in ("TEACHER", "CONTENT_ADMIN"):
        assert await figures(metrics, people[role], school_class.class_id) == (
            school_class.expected()
        ), role


async def test_redelivery_in_reverse_and_a_rebuild_change_nothing(
    metrics: MetricsHarness, people: dict[str, Account], school_class: SchoolClass
) -> None:
    admin = people["CONTENT_ADMIN"]
    logged = await metrics.logged()
    await metrics.send(reversed(school_class.events))
    await eventually(metrics.drained, timeout=60, what="the copies worked through")
    assert await metrics.logged() == logged
    assert await figures(metrics, admin, school_class.class_id) == school_class.expected()
    async with metrics.resources.session_factory() as session:
        await rebuild(session, metrics.resources)
    assert await figures(metrics, admin, school_class.class_id) == school_class.expected()


async def test_only_the_teacher_of_the_class_and_admins_see_it(
    metrics: MetricsHarness,
    access: AccessHarness,
    people: dict[str, Account],
    school_class: SchoolClass,
) -> None:
    mine = f"/v1/metrics/classes/{school_class.class_id}"
    assert_problem(await metrics.http.get(mine), 401)
    for role in ("LEARNER", "VOLUNTEER"):
        assert_problem(await metrics.http.get(mine, headers=people[role].headers), 403)
    # Of the services, only access (for its class report) reads them.
    for client in ("content", "delivery", "metrics"):
        service = await access.service_token(client)
        assert_problem(await metrics.http.get(mine, headers=service), 403)
    # Another teacher, and this teacher on another's class: a 404, as for no class
    # at all, so that a teacher learns nothing of classes that are not theirs.
    other_teacher = await access.account(people["TEACHER"].role)
    assert_problem(await metrics.http.get(mine, headers=other_teacher.headers), 404)
    theirs = f"/v1/metrics/classes/{school_class.other_class}"
    assert_problem(await metrics.http.get(theirs, headers=people["TEACHER"].headers), 404)
    # An admin sees the other class (L1 alone, nothing assigned) and a 404 for none.
    other = await figures(metrics, people["CONTENT_ADMIN"], school_class.other_class)
    assert other == {
        "class_id": str(school_class.other_class),
        "learners": 1,
        "assignments": [],
        "reading": [],
    }
    unknown = f"/v1/metrics/classes/{uuid.uuid4()}"
    assert_problem(await metrics.http.get(unknown, headers=people["CONTENT_ADMIN"].headers), 404)
    bad = await metrics.http.get("/v1/metrics/classes/nope", headers=people["TEACHER"].headers)
    assert_problem(bad, 422)
