"""#40: near-duplicates found at submit: a copy of a published book holds the
submission; a copy of another submission and a copied illustration are warnings;
a translation or adaptation inside its own story family is none of these."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select

from services.content.duplicates import hamming
from services.content.models import ManuscriptFingerprint
from shared.contracts.roles import Role
from stories.samples import text_pdf
from tests.harness.content import ContentHarness

STORY = [
    "The little tortoise walked slowly to the market with her grandmother every "
    "Saturday morning, carrying a basket of sweet mangoes.",
    "On the way they met a hare who laughed at the tortoise and said she would never "
    "arrive before the sun went down.",
    "But the tortoise kept walking, step by step, and reached the market long before "
    "the proud hare woke up from his nap.",
]
# A copy with a few words changed, as a copier would.
COPY = [page.replace("little", "small").replace("proud", "lazy") for page in STORY]
GOAT = [
    "A busy goat climbed the hill behind the school to find the greenest grass in the "
    "whole valley before the rains came.",
    "She ate and ate until the clouds turned grey, and then she ran home with the "
    "thunder rolling behind her.",
    "Her friends were waiting under the big baobab tree, and together they watched "
    "the rain wash the dusty road clean.",
]
SWAHILI = [
    "Kobe mdogo alitembea polepole kwenda sokoni pamoja na bibi yake kila Jumamosi "
    "asubuhi, akibeba kikapu cha maembe matamu.",
    "Njiani walikutana na sungura aliyemcheka kobe na kusema kwamba hatafika kabla jua halijazama.",
    "Lakini kobe aliendelea kutembea, hatua kwa hatua, na akafika sokoni muda mrefu "
    "kabla sungura hajaamka.",
]


def kinds(submission: dict[str, Any]) -> list[str]:
    return [f["kind"] for f in submission["analysis"]["findings"]]


async def test_near_duplicates_outside_the_family_are_found_and_inside_it_are_not(
    content_on_both: ContentHarness,
) -> None:
    content = content_on_both
    first = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    published = await content.published_book(
        author=first, reviewer=reviewer, admin=admin, pdf=text_pdf(STORY, drawing=1)
    )
    translator = await content.account(Role.VOLUNTEER)
    # An adaptation and a translation of the published book, in its family, with its
    # pictures: neither is a duplicate of its original.
    for body in ({"kind": "adaptation", "reading_level": "emergent"},
                 {"kind": "translation", "language": "sw"}):  # fmt: skip
        started = await content.http.post(
            f"/v1/books/{published['id']}/derivations", json=body, headers=translator.headers
        )
        assert started.status_code == 201, started.text
        text = STORY if body["kind"] == "adaptation" else SWAHILI
        uploaded = await content.upload(translator, started.json()["id"], text_pdf(text, drawing=1))
        assert uploaded.status_code in (200, 201, 204), uploaded.text
        derived = await content.submit(translator, started.json())
        assert derived.status_code == 200, derived.text
        found = kinds(derived.json())
        assert not {"copied-book", "duplicate-submission", "copied-illustration"} & set(found)

    copier = await content.account(Role.VOLUNTEER)

    # A copy of the published book's text, with other pictures: severe, and held
    # (and a duplicate of the adaptation, which shares the text, as a warning).
    copied = await content.submitted(copier, pdf=text_pdf(COPY, drawing=2))
    (finding,) = [f for f in copied["analysis"]["findings"] if f["kind"] == "copied-book"]
    assert finding["severity"] == "severe"
    assert published["id"] in finding["detail"]
    assert copied["held"] is True
    assert "copied-illustration" not in kinds(copied)

    # Its own text with the published book's picture: a warning, not a hold.
    pictured = await content.submitted(copier, pdf=text_pdf(GOAT, drawing=1))
    # (like the book, its adaptation and its translation: one finding each)
    assert kinds(pictured) == ["copied-illustration"] * 3
    assert pictured["analysis"]["findings"][0]["page"] == 1
    assert pictured["held"] is False

    # A copy of that submission (not published) by someone else: a warning.
    other = await content.account(Role.VOLUNTEER)
    again = await content.submitted(other, pdf=text_pdf(GOAT, drawing=3))
    (duplicate,) = [f for f in again["analysis"]["findings"] if f["kind"] != "level-differs"]
    assert (duplicate["kind"], duplicate["severity"]) == ("duplicate-submission", "warning")
    assert pictured["id"] in duplicate["detail"]
    assert again["held"] is False

    # An unrelated story is nothing like any of them.
    unrelated = [
        "Every evening the fisherman's daughter counted the stars above the lake and "
        "gave each of them a name from her grandmother's songs.",
        "One night a star was missing, so she rowed out in the dark with a lantern to "
        "look for it among the reeds and the sleeping herons.",
    ]
    fresh = await content.submitted(other, pdf=text_pdf(unrelated, drawing=4))
    assert not {"copied-book", "duplicate-submission", "copied-illustration"} & set(kinds(fresh))

    # What is kept is a signature and hashes: no text, no picture.
    async with content.resources.session_factory() as session:
        row = (
            await session.scalars(
                select(ManuscriptFingerprint).where(
                    ManuscriptFingerprint.submission_id == uuid.UUID(copied["id"])
                )
            )
        ).one()
    assert row.signature is not None
    assert len(row.signature) == 64
    assert all(len(h) == 16 for h in row.illustrations)
    stored = json.dumps([row.signature, row.illustrations])
    assert "tortoise" not in stored
    assert "shingles" not in json.dumps(copied["analysis"])


def test_the_hamming_distance_of_two_hashes() -> None:
    assert hamming("0000000000000000", "0000000000000000") == 0
    assert hamming("ffffffffffffffff", "0000000000000000") == 64
    assert hamming("8000000000000001", "0000000000000000") == 2
