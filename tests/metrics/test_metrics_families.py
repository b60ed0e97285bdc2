"""Story families in the figures: a scripted stream of book, submission and reading
events (versions 1 and 2 mixed, as during a rollout) through SQS into the metrics
worker, then the exact per-family and per-language figures and the coverage
matrix, unchanged by redelivery and by a rebuild from the log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.metrics.projection import rebuild
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    BookCreated,
    BookPublished,
    BookPublishedV1,
    DeliveryIssued,
    EventData,
    ReadingCompleted,
    ReviewDecision,
    SubmissionCreated,
    SubmissionReviewed,
    SubmissionSubmitted,
    SubmissionSubmittedV1,
    SubmissionSubmittedV2,
)
from tests.harness.access import Account
from tests.harness.metrics import MetricsHarness
from tests.support import eventually, original_lineage

H = timedelta(hours=1)


class Library:
    """Family F: the Swahili original B1, its English translation B2 and an easier
    English adaptation of that, B3 (unpublished again). Family G: the English
    original B4 only. B5: an English book heard of only in version 1 (no family).
    In review: a French translation of F (submitted), a Swahili one of G (changes
    requested); a rejected Spanish one of F and a v1 submission count nowhere."""

    def __init__(self) -> None:
        self.base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 48 * H
        self.b1, self.b2, self.b3, self.b4, self.b5 = (uuid.uuid4() for _ in range(5))
        self.family_f, self.family_g = self.b1, self.b4
        self.readers = [uuid.uuid4() for _ in range(4)]
        self.flagged = uuid.uuid4()  # another French version of F, flagged at submit
        self.events: list[Envelope] = []

    def at(self, hours: float, data: EventData) -> None:
        self.events.append(Envelope.wrap(data, time=self.base + hours * H))

    def published(
        self,
        book: uuid.UUID,
        language: str,
        family: uuid.UUID,
        level: str = "early",
        **lineage: Any,
    ) -> BookPublished:
        return BookPublished(
            book_id=book,
            object_key="k",
            object_version="v",
            access="free",
            language=language,
            **(original_lineage(family, level) | lineage),
        )

    def submitted(
        self, language: str, family: uuid.UUID, review: ReviewDecision | None = None
    ) -> None:
        submission = uuid.uuid4()
        author = uuid.uuid4()
        self.at(
            1,
            SubmissionCreated(
                submission_id=submission, author_id=author, language=language, category="animals"
            ),
        )
        self.at(
            2,
            SubmissionSubmitted(
                submission_id=submission, author_id=author, language=language, family_id=family
            ),
        )
        if review:
            self.at(
                3,
                SubmissionReviewed(
                    submission_id=submission,
                    reviewer_id=uuid.uuid4(),
                    decision=review,
                    seconds_since_submitted=3600,
                ),
            )

    def build(self) -> list[Envelope]:
        at, r = self.at, self.readers
        for book, title, language in (
            (self.b1, "Moons", "sw"),
            (self.b2, "Moons (en)", "en"),
            (self.b3, "Moons (easy)", "en"),
            (self.b4, "Rivers", "en"),
        ):
            at(
                0,
                BookCreated(
                    book_id=book,
                    submission_id=uuid.uuid4(),
                    title=title,
                    language=language,
                    access="free",
                ),
            )
        at(1, self.published(self.b1, "sw", self.family_f))
        at(
            2,
            self.published(
                self.b2, "en", self.family_f, derivation="translation", derived_from=self.b1
            ),
        )
        at(
            3,
            self.published(
                self.b3,
                "en",
                self.family_f,
                "emergent",
                derivation="adaptation",
                derived_from=self.b2,
            ),
        )
        at(
            4,
            BookPublishedV1(
                book_id=self.b3, object_key="k", object_version="v", access="free", language="en"
            ),
        )
        at(5, self.published(self.b4, "en", self.family_g))
        at(
            1,
            BookPublishedV1(
                book_id=self.b5, object_key="k", object_version="v", access="free", language="en"
            ),
        )
        # Reading: r0 opens B1 twice and finishes it; r1 opens B1 and B2; r2 opens B4;
        # r3 opens B5 and finishes it.
        for hours, book, reader in (
            (6, self.b1, r[0]),
            (7, self.b1, r[0]),
            (6, self.b1, r[1]),
            (8, self.b2, r[1]),
            (9, self.b4, r[2]),
            (9, self.b5, r[3]),
        ):
            at(hours, DeliveryIssued(book_id=book, user_id=reader, method="s3"))
        at(8, ReadingCompleted(book_id=self.b1, user_id=r[0]))
        at(10, ReadingCompleted(book_id=self.b5, user_id=r[3]))
        self.submitted("fr", self.family_f)
        self.submitted("sw", self.family_g, review="request_changes")
        self.submitted("es", self.family_f, review="reject")
        legacy = uuid.uuid4()
        at(2, SubmissionSubmittedV1(submission_id=legacy, author_id=uuid.uuid4()))
        # A French version of F, submitted three times: before flags (v2), then with
        # what its analysis flagged; the older v3 arrives last and changes nothing.
        author, family = uuid.uuid4(), self.family_f
        common = {
            "submission_id": self.flagged,
            "author_id": author,
            "language": "fr",
            "family_id": family,
        }
        at(
            1,
            SubmissionCreated(
                submission_id=self.flagged, author_id=author, language="fr", category="animals"
            ),
        )
        at(2, SubmissionSubmittedV2(**common))
        at(4, SubmissionSubmitted(**common, flags=["copied-book", "offensive-word"], held=True))
        at(3, SubmissionSubmitted(**common, flags=["web-address"]))
        return self.events  # fmt: skip


@pytest.fixture(scope="module")
async def library(metrics: MetricsHarness) -> Library:
    story = Library()
    events = story.build()
    await metrics.send(events)

    async def all_logged() -> bool:
        return await metrics.logged() >= len(events)

    await eventually(all_logged, timeout=60, what="every event applied")
    return story


async def figures(metrics: MetricsHarness, admin: Account) -> dict[str, Any]:
    return {
        "families": await metrics.get("/v1/metrics/families", admin.headers),
        "coverage": await metrics.get("/v1/metrics/coverage", admin.headers),
    }


def check(found: dict[str, Any], s: Library) -> None:
    families = {f["family_id"]: f for f in found["families"]["families"]}
    assert families == {
        str(s.family_f): {
            "family_id": str(s.family_f),
            "title": "Moons",
            "published_languages": ["en", "sw"],  # B3 was unpublished again
            "books": 3,
            "opens": 4,
            "distinct_readers": 2,  # r0, r1
            "completions": 1,
        },
        str(s.family_g): {
            "family_id": str(s.family_g),
            "title": "Rivers",
            "published_languages": ["en"],
            "books": 1,
            "opens": 1,
            "distinct_readers": 1,
            "completions": 0,
        },
    }
    languages = {row.pop("language"): row for row in found["families"]["languages"]}
    assert languages == {
        "sw": {"books": 1, "opens": 3, "distinct_readers": 2, "completions": 1},
        # B2, B3, B4 and the version-1 B5: counted by language though of no known family.
        "en": {"books": 4, "opens": 3, "distinct_readers": 3, "completions": 1},
    }
    coverage = found["coverage"]
    assert coverage["languages"] == ["en", "fr", "sw"]  # the rejected Spanish counts nowhere
    rows = {row["family_id"]: row for row in coverage["families"]}
    assert rows[str(s.family_f)]["cells"] == {
        "en": "published",
        "fr": "in_review",
        "sw": "published",
    }
    assert rows[str(s.family_g)]["cells"] == {"en": "published", "fr": "missing", "sw": "in_review"}
    assert rows[str(s.family_g)]["missing"] == ["fr"]
    assert rows[str(s.family_g)]["title"] == "Rivers"


async def test_family_and_language_figures_and_coverage_are_exact(
    metrics: MetricsHarness, people: dict[str, Account], library: Library
) -> None:
    check(await figures(metrics, people["CONTENT_ADMIN"]), library)


async def test_redelivery_and_a_rebuild_change_nothing(
    metrics: MetricsHarness, people: dict[str, Account], library: Library
) -> None:
    admin = people["CONTENT_ADMIN"]
    before = await figures(metrics, admin)
    logged = await metrics.logged()
    await metrics.send(reversed(library.events))  # every event again, in reverse order
    await eventually(metrics.drained, timeout=60, what="the copies worked through")
    assert await metrics.logged() == logged
    after = await figures(metrics, admin)
    for found in (before, after):
        found["coverage"].pop("as_of")
    assert after == before
    async with metrics.resources.session_factory() as session:
        await rebuild(session, metrics.resources)
    check(await figures(metrics, admin), library)


async def test_the_review_queue_shows_what_each_submission_was_flagged_for(
    metrics: MetricsHarness, people: dict[str, Account], library: Library
) -> None:
    workflow = await metrics.get("/v1/metrics/workflow", people["CONTENT_ADMIN"].headers)
    flags = {item["submission_id"]: item["flags"] for item in workflow["oldest_waiting_review"]}
    assert flags[str(library.flagged)] == ["copied-book", "offensive-word"]
    assert set(map(tuple, flags.values())) == {(), ("copied-book", "offensive-word")}


async def test_only_platform_viewers_see_them(
    metrics: MetricsHarness, people: dict[str, Account], library: Library
) -> None:
    for path in ("/v1/metrics/families", "/v1/metrics/coverage"):
        assert (await metrics.http.get(path)).status_code == 401
        for role in ("TEACHER", "LEARNER", "VOLUNTEER"):
            response = await metrics.http.get(path, headers=people[role].headers)
            assert response.status_code == 403, (path, role)
