"""The metrics service end to end: a scripted stream of platform events goes through
SQS (moto) into the metrics worker (PostgreSQL, Redis), and every endpoint shows
exactly the figures worked out by hand below, also after every event is delivered
again, after a rebuild from the event log, and with Redis emptied. Late and
out-of-order events land where they belong; poison goes to the DLQ."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.metrics.export import export_to_cloudwatch
from services.metrics.models import RecordedEvent
from services.metrics.projection import rebuild
from services.metrics.retention import READING_EVENT_TYPES, keep_retention
from services.metrics.sketches import ReaderSketches
from services.metrics.terms import day_of
from shared.contracts.clock import hour_of
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    BookCreated,
    BookPublished,
    BookPublishedV1,
    BookUnpublished,
    DeliveryIssued,
    EntitlementGranted,
    EventData,
    ReadingCompleted,
    ReadingProgressed,
    RoleAssigned,
    SubmissionCreated,
    SubmissionReviewed,
    SubmissionSubmittedV1,
    UserLoggedIn,
    UserRegistered,
)
from shared.contracts.roles import Role
from tests.harness.access import Account
from tests.harness.metrics import MetricsHarness
from tests.support import assert_problem, eventually, original_lineage

# Also run against LocalStack by `make test` (TEST_AWS=localstack pytest -m e2e).
pytestmark = pytest.mark.e2e


H = timedelta(hours=1)
S = timedelta(seconds=1)


class Scenario:
    """Who did what when; times are relative to the start of the current hour, so
    "today", "the last 24 h" and "the last 7 days" hold the same events whenever
    the test runs."""

    def __init__(self, teacher: uuid.UUID) -> None:
        self.base = hour_of(datetime.now(UTC))
        self.teacher = teacher
        self.u1, self.u2, self.u3, self.u4, self.u5 = (uuid.uuid4() for _ in range(5))
        self.s1, self.s2, self.s3, self.s4 = (uuid.uuid4() for _ in range(4))
        self.b1, self.b2, self.b3 = (uuid.uuid4() for _ in range(3))
        self.events: list[Envelope] = []

    def at(self, offset: timedelta, data: EventData) -> Envelope:
        envelope = Envelope.wrap(data, time=self.base + offset)
        self.events.append(envelope)
        return envelope

    def build(self) -> list[Envelope]:
        at = self.at
        learner = Role.LEARNER
        # People: three register today, one 3 days ago, one 10 days ago (outside 7 d).
        # U3's promotion is sent before its registration: it must still win (newer).
        at(
            2 * S,
            RoleAssigned(
                user_id=self.u3, previous_role=learner, role=Role.VOLUNTEER, assigned_by=None
            ),
        )
        for user in (self.u1, self.u2, self.u3):
            at(0 * S, UserRegistered(user_id=user, role=learner))
        at(-72 * H, UserRegistered(user_id=self.u4, role=learner))
        at(-240 * H, UserRegistered(user_id=self.u5, role=learner))
        at(
            1 * S,
            RoleAssigned(
                user_id=self.u2, previous_role=learner, role=Role.TEACHER, assigned_by=None
            ),
        )
        at(
            -239 * H,
            RoleAssigned(
                user_id=self.u5, previous_role=learner, role=Role.CONTENT_ADMIN, assigned_by=None
            ),
        )
        at(0 * S, UserLoggedIn(user_id=self.u1, role=learner))
        at(1 * S, UserLoggedIn(user_id=self.u1, role=learner))
        at(-72 * H, UserLoggedIn(user_id=self.u4, role=learner))

        # Workflow. S1: submitted, approved after 2 h, its book published 3 h later.
        reviewer = uuid.uuid4()
        at(
            -72 * H,
            SubmissionCreated(
                submission_id=self.s1, author_id=self.u3, language="sw", category="animals"
            ),
        )
        at(-71 * H, SubmissionSubmittedV1(submission_id=self.s1, author_id=self.u3))
        at(
            -69 * H,
            SubmissionReviewed(
                submission_id=self.s1,
                reviewer_id=reviewer,
                decision="approve",
                seconds_since_submitted=7200,
            ),
        )
        at(
            -68 * H,
            BookCreated(
                book_id=self.b1, submission_id=self.s1, title="Moons", language="sw", access="free"
            ),
        )
        at(
            -66 * H,
            BookPublished(
                book_id=self.b1,
                object_key="books/b1.pdf",
                object_version="v1",
                access="free",
                language="sw",
                **original_lineage(self.b1),
            ),
        )
        # S2: changes requested 10 days ago, resubmitted, approved; no book yet.
        at(
            -240 * H,
            SubmissionCreated(
                submission_id=self.s2, author_id=self.u3, language="en", category="science"
            ),
        )
        at(-239 * H, SubmissionSubmittedV1(submission_id=self.s2, author_id=self.u3))
        at(
            -238 * H,
            SubmissionReviewed(
                submission_id=self.s2,
                reviewer_id=reviewer,
                decision="request_changes",
                seconds_since_submitted=3600,
            ),
        )
        at(-72 * H, SubmissionSubmittedV1(submission_id=self.s2, author_id=self.u3))
        at(
            -72 * H + 30 * 60 * S,
            SubmissionReviewed(
                submission_id=self.s2,
                reviewer_id=reviewer,
                decision="approve",
                seconds_since_submitted=1800,
            ),
        )
        # S3 waits for review; S4 was rejected. S4's review arrives before its creation.
        at(
            0 * S,
            SubmissionCreated(
                submission_id=self.s3, author_id=self.u3, language="en", category="science"
            ),
        )
        at(1 * S, SubmissionSubmittedV1(submission_id=self.s3, author_id=self.u3))
        at(
            -71 * H,
            SubmissionReviewed(
                submission_id=self.s4,
                reviewer_id=reviewer,
                decision="reject",
                seconds_since_submitted=3600,
            ),
        )
        at(
            -72 * H,
            SubmissionCreated(
                submission_id=self.s4, author_id=self.u3, language="fr", category="history"
            ),
        )
        at(-72 * H, SubmissionSubmittedV1(submission_id=self.s4, author_id=self.u3))
        # B2 was published 10 days ago and taken down 3 days ago; B3's unpublication
        # (newer) is delivered before its publication: neither counts as published.
        at(
            -240 * H,
            # As content wrote it before story families: version 1 still counts.
            BookPublishedV1(
                book_id=self.b2,
                object_key="books/b2.pdf",
                object_version="v1",
                access="entitled",
                language="en",
            ),
        )
        at(-72 * H, BookUnpublished(book_id=self.b2))
        at(3 * S, BookUnpublished(book_id=self.b3))
        at(
            2 * S,
            BookPublished(
                book_id=self.b3,
                object_key="books/b3.pdf",
                object_version="v1",
                access="free",
                language="en",
                **original_lineage(self.b3),
            ),
        )

        # Reading B1: U1 twice today, U3 today, U4 3 days ago, U1 10 days ago.
        for offset, user in (
            (0 * S, self.u1),
            (1 * S, self.u1),
            (5 * S, self.u3),
            (-72 * H, self.u4),
            (-240 * H, self.u1),
        ):
            at(offset, DeliveryIssued(book_id=self.b1, user_id=user, method="s3"))
        at(0 * S, ReadingProgressed(book_id=self.b1, user_id=self.u1, page=5, total_pages=10))
        at(1 * S, ReadingCompleted(book_id=self.b1, user_id=self.u1))
        at(1 * S, ReadingProgressed(book_id=self.b1, user_id=self.u1, page=10, total_pages=10))
        at(-72 * H, ReadingProgressed(book_id=self.b1, user_id=self.u4, page=3, total_pages=10))
        # The teacher assigned B1 (so may see its figures), not B2.
        at(
            -70 * H,
            EntitlementGranted(
                entitlement_id=uuid.uuid4(),
                user_id=self.u1,
                book_id=self.b1,
                source="teacher_assignment",
                granted_by=self.teacher,
            ),
        )
        return self.events  # fmt: skip


@pytest.fixture(scope="module")
async def scenario(metrics: MetricsHarness, people: dict[str, Account]) -> Scenario:
    story = Scenario(teacher=people["TEACHER"].id)
    events = story.build()
    await metrics.send(events)
    await eventually(lambda: _logged(metrics, len(events)), timeout=60, what="every event applied")
    return story


async def _logged(metrics: MetricsHarness, count: int) -> bool:
    return await metrics.logged() >= count


def expected_overview(s: Scenario) -> dict[str, Any]:
    return {
        "users_by_role": {"LEARNER": 2, "TEACHER": 1, "VOLUNTEER": 1, "CONTENT_ADMIN": 1},
        "registrations": {"today": 3, "last_7_days": 4},
        "logins": {"today": 2, "last_7_days": 3},
        "submissions_by_status": {"APPROVED": 2, "SUBMITTED": 1, "REJECTED": 1},
        "review_backlog": 1,
        "published_books": 1,
        "pdf_opens": {"today": 3, "last_7_days": 4},
        "distinct_readers": {"last_24h": 2, "last_7_days": 3},
        "completions": {"today": 1, "last_7_days": 1},
    }


def expected_workflow(s: Scenario) -> dict[str, Any]:
    return {
        "funnel": {"created": 4, "submitted": 4, "reviewed": 3, "approved": 2, "published": 1},
        # Waits 7200, 3600, 1800, 3600: median 3600; p90 interpolates 3600..7200 at 0.7.
        "submission_to_decision_seconds": {"count": 4, "median": 3600.0, "p90": 6120.0},
        "approval_to_publication_seconds": {"count": 1, "median": 10800.0, "p90": 10800.0},
        "oldest_waiting_review": [str(s.s3)],
        "oldest_waiting_publication": [str(s.s2)],
    }


def expected_book(s: Scenario) -> dict[str, Any]:
    return {
        "book_id": str(s.b1),
        "opens": 5,
        "distinct_readers": 3,  # U1, U3, U4
        "completions": 1,
        "completion_rate": pytest.approx(1 / 3),
        "average_progress": pytest.approx((1.0 + 0.3) / 2),  # U1 finished, U4 at 3/10
    }


async def figures(metrics: MetricsHarness, admin: Account, s: Scenario) -> dict[str, Any]:
    h = admin.headers
    overview = await metrics.get("/v1/metrics/overview", h)
    workflow = await metrics.get("/v1/metrics/workflow", h)
    for key in ("oldest_waiting_review", "oldest_waiting_publication"):
        workflow[key] = [item["submission_id"] for item in workflow[key]]
    since, until = (s.base - 13 * 24 * H).isoformat(), (s.base + H).isoformat()
    daily = {
        metric: await metrics.get(
            "/v1/metrics/timeseries", h, metric=metric, interval="day", **{"from": since}, to=until
        )
        for metric in ("opens", "readers", "registrations")
    }
    hourly = await metrics.get(
        "/v1/metrics/timeseries",
        h,
        metric="opens",
        interval="hour",
        **{"from": (s.base - 2 * H).isoformat()},
        to=(s.base + H).isoformat(),
    )
    return {
        "overview": {k: v for k, v in overview.items() if k in expected_overview(s)},
        "readers_source": overview["distinct_readers_source"],
        "workflow": workflow,
        "book": await metrics.get(f"/v1/metrics/books/{s.b1}", h),
        "daily": {
            m: {p["at"]: p["value"] for p in series["points"]} for m, series in daily.items()
        },
        "hourly": [p["value"] for p in hourly["points"]],
    }


def check(found: dict[str, Any], s: Scenario) -> None:
    assert found["overview"] == expected_overview(s)
    assert found["workflow"] == expected_workflow(s)
    assert found["book"] == expected_book(s)
    today, three_days_ago = day_of(s.base), day_of(s.base - 72 * H)
    ten_days_ago = day_of(s.base - 240 * H)  # outside "7 days", inside the 14 charted

    def day(moment: datetime) -> str:
        return moment.isoformat().replace("+00:00", "Z")

    for metric, expected in {
        "opens": {today: 3, three_days_ago: 1, ten_days_ago: 1},
        "readers": {today: 2, three_days_ago: 1, ten_days_ago: 1},
        "registrations": {today: 3, three_days_ago: 1, ten_days_ago: 1},
    }.items():
        series = found["daily"][metric]
        assert len(series) == 14  # zero-filled, one point a day
        assert {at: v for at, v in series.items() if v} == {day(d): n for d, n in expected.items()}
    assert found["hourly"] == [0, 0, 3]


async def test_every_endpoint_shows_exactly_the_scripted_figures(
    metrics: MetricsHarness, people: dict[str, Account], scenario: Scenario
) -> None:
    await sealed(metrics, people["CONTENT_ADMIN"], scenario)
    found = await figures(metrics, people["CONTENT_ADMIN"], scenario)
    check(found, scenario)
    assert found["readers_source"] == "redis-hyperloglog"


async def sealed(metrics: MetricsHarness, admin: Account, scenario: Scenario) -> None:
    """Until the worker has sealed the sketches, distinct readers come from PostgreSQL."""

    async def from_sketches() -> bool:
        return bool((await figures(metrics, admin, scenario))["readers_source"] != "postgresql")

    await eventually(from_sketches, timeout=20, what="the reader sketches sealed")


async def test_redelivered_events_change_nothing(
    metrics: MetricsHarness, people: dict[str, Account], scenario: Scenario
) -> None:
    before = await figures(metrics, people["CONTENT_ADMIN"], scenario)
    logged = await metrics.logged()
    await metrics.send(reversed(scenario.events))  # every event again, in reverse order
    await eventually(metrics.drained, timeout=60, what="the copies worked through")
    assert await metrics.logged() == logged
    after = await figures(metrics, people["CONTENT_ADMIN"], scenario)
    assert after == before
    check(after, scenario)


async def test_a_rebuild_from_the_log_gives_the_same_figures_and_redis_is_optional(
    metrics: MetricsHarness, people: dict[str, Account], scenario: Scenario
) -> None:
    admin = people["CONTENT_ADMIN"]
    await sealed(metrics, admin, scenario)
    before = await figures(metrics, admin, scenario)
    async with metrics.resources.session_factory() as session:
        applied = await rebuild(session, metrics.resources)
    assert applied == await metrics.logged()
    check(await figures(metrics, admin, scenario), scenario)
    await sealed(metrics, admin, scenario)  # the rebuild dropped the seal; the worker reseals
    assert await figures(metrics, admin, scenario) == before
    # Redis emptied: the sketches are gone, the figures stay exact (from PostgreSQL
    # until the worker has resealed; before #14 this showed 0 as "redis-hyperloglog").
    await ReaderSketches.of(metrics.resources).clear()
    check(await figures(metrics, admin, scenario), scenario)
    await sealed(metrics, admin, scenario)
    assert await figures(metrics, admin, scenario) == before


async def test_who_sees_what(
    metrics: MetricsHarness, people: dict[str, Account], scenario: Scenario
) -> None:
    teacher, learner, volunteer = people["TEACHER"], people["LEARNER"], people["VOLUNTEER"]
    platform = [
        "/v1/metrics/overview",
        "/v1/metrics/workflow",
        "/v1/metrics/timeseries?metric=opens",
    ]
    for path in platform:
        assert (await metrics.http.get(path)).status_code == 401
        for account in (teacher, learner, volunteer):
            response = await metrics.http.get(path, headers=account.headers)
            assert_problem(response, 403)
    # #13.10: dates that overflow are the caller's problem (422), and only after
    # the caller may ask at all (403 first, whatever the dates).
    odd_dates = [
        "0001-01-02T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00+14:00",
        "0001-01-02T00:00:00",
    ]
    for moment in odd_dates:
        for query in ({"to": moment}, {"from": moment}):
            params = {"metric": "opens", **query}
            as_learner = await metrics.http.get(
                "/v1/metrics/timeseries", params=params, headers=learner.headers
            )
            assert as_learner.status_code == 403, (query, as_learner.text)
            as_admin = await metrics.http.get(
                "/v1/metrics/timeseries", params=params, headers=people["CONTENT_ADMIN"].headers
            )
            assert as_admin.status_code == 422, (query, as_admin.text)
    # A teacher sees the reading figures of the book they granted, counted over the
    # learner they granted it to (U1), not over the platform (#13.13).
    mine = await metrics.get(f"/v1/metrics/books/{scenario.b1}", teacher.headers)
    assert mine == {
        "book_id": str(scenario.b1),
        "opens": 3,  # U1's three, not U3's or U4's
        "distinct_readers": 1,
        "completions": 1,
        "completion_rate": 1.0,
        "average_progress": 1.0,
    }
    assert await metrics.get(
        f"/v1/metrics/books/{scenario.b1}", people["CONTENT_ADMIN"].headers
    ) == expected_book(scenario)

    async def teachers(metric: str) -> int:
        series = await metrics.get(
            "/v1/metrics/timeseries", teacher.headers, metric=metric, book_id=str(scenario.b1)
        )
        return sum(p["value"] for p in series["points"])  # the last 7 days

    assert await teachers("opens") == 2  # U1 today (the platform: 4)
    assert await teachers("readers") == 1
    assert await teachers("completions") == 1
    for path in (
        f"/v1/metrics/books/{scenario.b2}",
        f"/v1/metrics/timeseries?metric=opens&book_id={scenario.b2}",
    ):
        response = await metrics.http.get(path, headers=teacher.headers)
        assert response.status_code == 403
        assert response.json()["type"].endswith("/not-your-book")
    for account in (learner, volunteer):
        response = await metrics.http.get(
            f"/v1/metrics/books/{scenario.b1}", headers=account.headers
        )
        assert response.status_code == 403
    admin = people["CONTENT_ADMIN"]
    unknown = await metrics.http.get(f"/v1/metrics/books/{uuid.uuid4()}", headers=admin.headers)
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("metric=pageviews", "unknown metric"),
        ("metric=opens&interval=week", "unknown interval"),
        ("metric=opens&from=2026-11-20T00:00:00Z&to=2026-11-10T00:00:00Z", "inverted"),
        ("metric=opens&interval=hour&from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "huge"),
        ("metric=opens&from=2026-11-10T00:00:00&to=2026-11-12T00:00:00", "no time zone"),
        ("metric=opens&from=yesterday", "not a time"),
        ("metric=registrations&book_id=" + str(uuid.UUID(int=1)), "not a per-book metric"),
        ("metric=opens&book_id=nope", "not a book id"),
    ],
)
async def test_bad_queries_are_problems(
    metrics: MetricsHarness, people: dict[str, Account], query: str, why: str
) -> None:
    response = await metrics.http.get(
        f"/v1/metrics/timeseries?{query}", headers=people["CONTENT_ADMIN"].headers
    )
    assert_problem(response, 422)


async def test_poison_goes_to_the_dlq_with_its_reason_and_blocks_nothing(
    metrics: MetricsHarness,
) -> None:
    sqs = metrics.resources.aws.sqs
    names = metrics.settings.resource_names
    dlq = (await sqs.get_queue_url(QueueName=names.dead_letter_queue("metrics")))["QueueUrl"]
    good = Envelope.wrap(UserLoggedIn(user_id=uuid.uuid4(), role=Role.LEARNER))
    unknown = json.loads(good.model_dump_json()) | {
        "type": "user.teleported",
        "id": str(uuid.uuid4()),
    }
    broken = json.loads(good.model_dump_json()) | {"id": str(uuid.uuid4()), "data": {"user_id": 7}}
    logged = await metrics.logged()
    await metrics.send(["not json at all", json.dumps(unknown), json.dumps(broken), good])
    await eventually(lambda: _logged(metrics, logged + 1), timeout=30, what="the good event")
    reasons: list[str] = []

    async def dead_lettered() -> bool:
        response = await sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        )
        for message in response.get("Messages", []):
            reasons.append(message["MessageAttributes"]["dead_letter_reason"]["StringValue"])
            await sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
        return len(reasons) >= 3

    await eventually(dead_lettered, timeout=30, what="three dead letters")
    assert len(reasons) == 3
    assert any("user.teleported" in r for r in reasons)
    assert await metrics.logged() == logged + 1


async def test_the_worker_exports_the_figures_to_cloudwatch(
    metrics: MetricsHarness, scenario: Scenario
) -> None:
    """PutMetricData into moto's CloudWatch, read back with GetMetricStatistics."""
    namespace = f"Stories/Test-{uuid.uuid4().hex[:8]}"
    settings = metrics.settings.model_copy(
        update={"cloudwatch_namespace": namespace, "cloudwatch_export_seconds": 0.2}
    )
    cloudwatch = metrics.resources.aws.cloudwatch
    stop = asyncio.Event()
    exporter = asyncio.create_task(export_to_cloudwatch(metrics.resources, settings, stop))

    async def exported() -> bool:
        listed = await cloudwatch.list_metrics(Namespace=namespace)
        return len(listed["Metrics"]) >= 8

    try:
        await eventually(exported, timeout=20, what="metrics in CloudWatch")
    finally:
        stop.set()
        await exporter
    metrics_listed = (await cloudwatch.list_metrics(Namespace=namespace))["Metrics"]
    listed = {m["MetricName"] for m in metrics_listed}
    assert {"ReviewBacklog", "PublishedBooks", "DistinctReaders24h", "PdfOpensToday"} <= listed
    now = datetime.now(UTC)

    async def latest(name: str, **dimensions: str) -> float:
        response = await cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=name,
            Dimensions=[
                {"Name": "Environment", "Value": "test"},
                *({"Name": k, "Value": v} for k, v in dimensions.items()),
            ],
            StartTime=now - timedelta(minutes=5),
            EndTime=now + timedelta(minutes=5),
            Period=60,
            Statistics=["Maximum"],
        )
        return float(max(point["Maximum"] for point in response["Datapoints"]))

    expected = expected_overview(scenario)
    assert await latest("ReviewBacklog") == expected["review_backlog"]
    assert await latest("PublishedBooks") == expected["published_books"]
    assert await latest("DistinctReaders7d") == expected["distinct_readers"]["last_7_days"]
    assert await latest("Users", Role="TEACHER") == expected["users_by_role"]["TEACHER"]
    assert await latest("Submissions", Status="APPROVED") == 2


async def test_stories_metrics_rebuild_is_a_command(
    metrics: MetricsHarness, people: dict[str, Account], scenario: Scenario
) -> None:
    await sealed(metrics, people["CONTENT_ADMIN"], scenario)
    before = await figures(metrics, people["CONTENT_ADMIN"], scenario)
    done = await metrics.command("metrics", "rebuild")
    assert done.returncode == 0, done.stderr
    assert f"rebuilt from {await metrics.logged()} logged event(s)" in done.stdout
    # Exact at once (from PostgreSQL until the worker has resealed the sketches).
    found = await figures(metrics, people["CONTENT_ADMIN"], scenario)
    assert {**found, "readers_source": "-"} == {**before, "readers_source": "-"}
    await sealed(metrics, people["CONTENT_ADMIN"], scenario)  # resealed by the worker
    assert await figures(metrics, people["CONTENT_ADMIN"], scenario) == before


async def test_reading_events_past_their_days_leave_the_log_and_every_figure_stays(
    metrics: MetricsHarness, people: dict[str, Account], scenario: Scenario
) -> None:
    """#41: the worker's retention job, at METRICS_RAW_EVENT_DAYS=2, folds the reading
    events of 3 and 10 days ago into what they added. Every endpoint shows the same
    figures, and so does a rebuild from what the log still holds."""
    admin = people["CONTENT_ADMIN"]
    await sealed(metrics, admin, scenario)
    before = await figures(metrics, admin, scenario)
    cutoff = datetime.now(UTC) - 2 * 24 * H
    old = {e.id for e in scenario.events if e.type in READING_EVENT_TYPES and e.time < cutoff}
    assert len(old) == 4  # U4's sign-in, open and page 3 days ago; U1's open 10 days ago

    async def logged_ids() -> set[uuid.UUID]:
        async with metrics.resources.session_factory() as session:
            return set((await session.scalars(select(RecordedEvent.event_id))).all())

    async def folded() -> bool:
        return not old & await logged_ids()

    settings = metrics.settings.model_copy(
        update={"raw_event_days": 2, "retention_check_seconds": 0.2}
    )
    stop = asyncio.Event()
    job = asyncio.create_task(keep_retention(metrics.resources, settings, stop))
    try:
        await eventually(folded, timeout=20, what="the old reading events folded")
    finally:
        stop.set()
        await job
    # Nothing else left: the rest of the scenario (and what other tests logged) stays.
    assert {e.id for e in scenario.events} - old <= await logged_ids()
    assert await figures(metrics, admin, scenario) == before

    done = await metrics.command("metrics", "rebuild")
    assert done.returncode == 0, done.stderr
    found = await figures(metrics, admin, scenario)
    assert {**found, "readers_source": "-"} == {**before, "readers_source": "-"}
    await sealed(metrics, admin, scenario)
    assert await figures(metrics, admin, scenario) == before
