"""Story families over real HTTP and PostgreSQL: an English original, its Swahili
translation and an easier English adaptation go through the whole workflow; the
catalog shows each with its siblings and attribution; the family's rules refuse
what they must; a newer version retires the older from the catalog."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from services.content.models import Submission
from shared.contracts.roles import Role
from tests.harness.access import Account
from tests.harness.content import STORY, ContentHarness
from tests.support import assert_problem, eventually


async def derive(
    content: ContentHarness, volunteer: Account, book_id: str, **body: Any
) -> dict[str, Any]:
    response = await content.http.post(
        f"/v1/books/{book_id}/derivations", json=body, headers=volunteer.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def publish_submission(
    content: ContentHarness,
    submission: dict[str, Any],
    *,
    author: Account,
    reviewer: Account,
    admin: Account,
) -> dict[str, Any]:
    return await content.publish_draft(submission, author=author, reviewer=reviewer, admin=admin)


async def test_an_original_its_translation_and_its_adaptation(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    translator = await content.account(Role.VOLUNTEER)
    adapter = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    http = content.http
    marker = uuid.uuid4().hex[:8]
    people = {"author": author, "reviewer": reviewer, "admin": admin}

    original_draft = await content.create(
        author,
        title=f"The Lantern Fox {marker}",
        credits=[
            {"role": "author", "name": "Amina Yusuf", "account_id": str(author.id)},
            {"role": "illustrator", "name": "Juma Ali"},
        ],
    )
    assert original_draft["derivation"] == "original"
    assert original_draft["licence"] == "CC-BY-4.0"
    original = await publish_submission(content, original_draft, **people)
    family = original["family_id"]
    assert original["attribution"] == (
        f"'The Lantern Fox {marker}' by Amina Yusuf, illustrated by Juma Ali, CC BY 4.0"
    )
    assert original["versions"] == []

    # A translation starts prefilled from its source, its maker credited.
    swahili_draft = await derive(
        content,
        translator,
        original["id"],
        kind="translation",
        language="sw",
        credited_as="Neema Mushi",
    )
    assert swahili_draft["family_id"] == family
    assert swahili_draft["derived_from"] == original["id"]
    assert (swahili_draft["language"], swahili_draft["reading_level"]) == ("sw", "early")
    assert swahili_draft["title"] == original["title"]
    assert [c["name"] for c in swahili_draft["credits"]] == [
        "Amina Yusuf",
        "Juma Ali",
        "Neema Mushi",
    ]
    assert swahili_draft["credits"][-1] == {
        "role": "translator",
        "name": "Neema Mushi",
        "account_id": str(translator.id),
    }
    # The translator translates the title; an edit back into English is refused.
    renamed = await http.patch(
        f"/v1/submissions/{swahili_draft['id']}",
        json={"title": f"Mbweha wa Taa {marker}"},
        headers={**translator.headers, "If-Match": '"1"'},
    )
    assert renamed.status_code == 200, renamed.text
    back = await http.patch(
        f"/v1/submissions/{swahili_draft['id']}",
        json={"language": "en"},
        headers={**translator.headers, "If-Match": '"2"'},
    )
    assert_problem(back, 422, "translation-same-language")
    relicensed = await http.patch(
        f"/v1/submissions/{swahili_draft['id']}",
        json={"licence": "CC-BY-NC-4.0"},
        headers={**translator.headers, "If-Match": '"2"'},
    )
    assert_problem(relicensed, 422, "derived-licence")
    swahili = await publish_submission(
        content, renamed.json(), author=translator, reviewer=reviewer, admin=admin
    )
    assert swahili["attribution"] == (
        f"Translated into Kiswahili by Neema Mushi from 'The Lantern Fox {marker}' by "
        "Amina Yusuf, illustrated by Juma Ali, CC BY 4.0"
    )

    easier_draft = await derive(
        content,
        adapter,
        original["id"],
        kind="adaptation",
        reading_level="emergent",
        credited_as="Tom Reed",
    )
    easier = await publish_submission(
        content, easier_draft, author=adapter, reviewer=reviewer, admin=admin
    )
    assert easier["attribution"].startswith("Adapted for emergent readers by Tom Reed from ")

    # The catalog shows each with its siblings (language and level → book).
    page = (await http.get("/v1/books", params={"family": family})).json()["items"]
    by_id = {b["id"]: b for b in page}
    assert set(by_id) == {original["id"], swahili["id"], easier["id"]}
    assert {
        (v["language"], v["reading_level"], v["book_id"]) for v in by_id[original["id"]]["versions"]
    } == {
        ("sw", "early", swahili["id"]),
        ("en", "emergent", easier["id"]),
    }
    assert by_id[swahili["id"]]["attribution"] == swahili["attribution"]
    one = (await http.get(f"/v1/books/{swahili['id']}")).json()
    assert {v["book_id"] for v in one["versions"]} == {original["id"], easier["id"]}

    listed = await http.get(f"/v1/families/{family}")
    assert listed.status_code == 200, listed.text
    assert listed.json()["original_id"] == original["id"]
    assert [(v["language"], v["reading_level"]) for v in listed.json()["versions"]] == [
        ("en", "emergent"),
        ("en", "early"),
        ("sw", "early"),
    ]
    assert_problem(await http.get(f"/v1/families/{uuid.uuid4()}"), 404)


async def test_the_family_rules_refuse_what_they_must(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    volunteer = await content.account(Role.VOLUNTEER)
    learner = await content.account(Role.LEARNER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    http = content.http
    original = await content.published_book(author=author, reviewer=reviewer, admin=admin)

    async def refused(who: Account, book_id: str, body: dict[str, Any]) -> Any:
        return await http.post(f"/v1/books/{book_id}/derivations", json=body, headers=who.headers)

    book = original["id"]
    assert_problem(
        await refused(volunteer, book, {"kind": "translation", "language": "en"}),
        422,
        "translation-same-language",
    )
    assert_problem(
        await refused(volunteer, book, {"kind": "adaptation", "reading_level": "early"}),
        422,
        "adaptation-same-level",
    )
    # A translation names a language and no level; an adaptation the reverse.
    assert_problem(
        await refused(volunteer, book, {"kind": "translation", "reading_level": "fluent"}), 422
    )
    assert_problem(await refused(volunteer, book, {"kind": "adaptation", "language": "sw"}), 422)
    assert_problem(await refused(learner, book, {"kind": "translation", "language": "sw"}), 403)
    assert_problem(
        await refused(volunteer, str(uuid.uuid4()), {"kind": "translation", "language": "sw"}),
        404,
    )

    # A no-derivatives licence allows no translation.
    closed = await content.published_book(
        author=author, reviewer=reviewer, admin=admin, licence="CC-BY-ND-4.0"
    )
    assert closed["licence"] == "CC-BY-ND-4.0"
    assert_problem(
        await refused(volunteer, closed["id"], {"kind": "translation", "language": "sw"}),
        409,
        "licence-forbids-derivatives",
    )

    # A book manager cannot turn a translation's book back into the source's language.
    draft = await derive(content, volunteer, book, kind="translation", language="fr")
    translated = await publish_submission(
        content, draft, author=volunteer, reviewer=reviewer, admin=admin
    )
    moved = await http.patch(
        f"/v1/books/{translated['id']}",
        json={"language": "en"},
        headers={**admin.headers, "If-Match": f'"{translated["version"]}"'},
    )
    assert_problem(moved, 422, "translation-same-language")


async def test_a_newer_version_retires_the_older_from_the_catalog(
    content: ContentHarness,
) -> None:
    author = await content.account(Role.VOLUNTEER)
    first = await content.account(Role.VOLUNTEER)
    second = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    http = content.http
    original = await content.published_book(author=author, reviewer=reviewer, admin=admin)

    older = await publish_submission(
        content,
        await derive(content, first, original["id"], kind="translation", language="sw"),
        author=first,
        reviewer=reviewer,
        admin=admin,
    )
    newer = await publish_submission(
        content,
        await derive(content, second, original["id"], kind="translation", language="sw"),
        author=second,
        reviewer=reviewer,
        admin=admin,
    )
    retired = await http.get(f"/v1/books/{older['id']}", headers=admin.headers)
    assert retired.json()["status"] == "UNPUBLISHED"
    assert retired.json()["superseded_by"] == newer["id"]
    assert_problem(await http.get(f"/v1/books/{older['id']}"), 404)  # out of the catalog
    page = (await http.get("/v1/books", params={"family": original["family_id"]})).json()
    assert {b["id"] for b in page["items"]} == {original["id"], newer["id"]}
    # Delivery and access hear that the older left (its issued links live on).
    unpublished = await content.outbox("book.unpublished")
    assert [e.data["book_id"] for e in unpublished].count(older["id"]) == 1

    # The older may be published again, retiring the newer in its turn.
    again = await http.post(f"/v1/books/{older['id']}/publish", headers=admin.headers)
    assert again.status_code == 200, again.text
    assert again.json()["superseded_by"] is None
    newer_now = (await http.get(f"/v1/books/{newer['id']}", headers=admin.headers)).json()
    assert (newer_now["status"], newer_now["superseded_by"]) == ("UNPUBLISHED", older["id"])


async def test_one_published_version_per_language_and_level_even_at_once(
    content: ContentHarness,
) -> None:
    author = await content.account(Role.VOLUNTEER)
    translators = [await content.account(Role.VOLUNTEER) for _ in range(5)]
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    http = content.http
    original = await content.published_book(author=author, reviewer=reviewer, admin=admin)

    async def approved_book(translator: Account, language: str) -> dict[str, Any]:
        draft = await derive(
            content, translator, original["id"], kind="translation", language=language
        )
        await content.upload(translator, draft["id"])
        submitted = (await content.submit(translator, draft)).json()
        approved = (await content.review(reviewer, submitted)).json()
        return await content.book(admin, approved)

    # Four Swahili versions published at the same moment: whichever the database
    # orders last stays published; one that overlapped another is refused and told why.
    books = [await approved_book(t, "sw") for t in translators[:4]]
    answers = await asyncio.gather(
        *(http.post(f"/v1/books/{b['id']}/publish", headers=admin.headers) for b in books)
    )
    for answer in answers:
        if answer.status_code != 200:
            assert_problem(answer, 409, "version-slot-taken")
    swahili = {"family": original["family_id"], "language": "sw"}
    page = (await http.get("/v1/books", params=swahili)).json()
    assert len(page["items"]) == 1

    # An edit cannot move a published version into a taken slot either.
    french = await approved_book(translators[4], "fr")
    published = await http.post(f"/v1/books/{french['id']}/publish", headers=admin.headers)
    moved = await http.patch(
        f"/v1/books/{french['id']}",
        json={"language": "sw"},
        headers={**admin.headers, "If-Match": f'"{published.json()["version"]}"'},
    )
    assert_problem(moved, 409, "version-slot-taken")


async def set_review_languages(content: ContentHarness, reviewer: Account, *tags: str) -> None:
    response = await content.access.http.put(
        "/v1/users/me/review-languages", json={"languages": list(tags)}, headers=reviewer.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["review_languages"] == list(tags)


async def test_reviewers_see_and_review_the_languages_they_declared(
    content: ContentHarness,
) -> None:
    author = await content.account(Role.VOLUNTEER)
    translator = await content.account(Role.VOLUNTEER)
    swahili_reviewer = await content.account(Role.STORY_MANAGER)
    english_reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    http = content.http
    # Reviewed by someone else: these two have no decision cached before they declare.
    other = await content.account(Role.STORY_MANAGER)
    original = await content.published_book(author=author, reviewer=other, admin=admin)
    await set_review_languages(content, swahili_reviewer, "sw")
    await set_review_languages(content, english_reviewer, "en")
    draft = await derive(content, translator, original["id"], kind="translation", language="sw-KE")
    await content.upload(translator, draft["id"])
    swahili = (await content.submit(translator, draft)).json()
    english = await content.submitted(author)

    async def queue(reviewer: Account, **params: Any) -> set[str]:
        response = await http.get("/v1/submissions", params=params, headers=reviewer.headers)
        assert response.status_code == 200, response.text
        return {s["id"] for s in response.json()["items"]}

    # "sw" covers "sw-KE"; neither sees the other's language by default.
    assert swahili["id"] in await queue(swahili_reviewer)
    assert english["id"] not in await queue(swahili_reviewer)
    assert swahili["id"] not in await queue(english_reviewer)
    assert english["id"] in await queue(english_reviewer)
    # On request, the whole queue (or one language): seen, but not theirs to review.
    assert {swahili["id"], english["id"]} <= await queue(english_reviewer, every_language="true")
    assert swahili["id"] in await queue(english_reviewer, language="sw-KE")
    refused = await content.review(english_reviewer, swahili)
    assert_problem(refused, 403, "not-your-language")
    claimed = await http.post(
        f"/v1/submissions/{swahili['id']}/claim",
        headers={**english_reviewer.headers, "If-Match": f'"{swahili["version"]}"'},
    )
    assert_problem(claimed, 403, "not-your-language")
    # An ADMIN adds Swahili to the English reviewer's languages: it counts at once.
    admin_account = await content.account(Role.ADMIN)
    added = await content.access.http.put(
        f"/v1/users/{english_reviewer.id}/review-languages",
        json={"languages": ["en", "sw"]},
        headers=admin_account.headers,
    )
    assert added.status_code == 200, added.text

    async def sees_swahili() -> bool:  # content's cached decision is emptied over pub/sub
        return swahili["id"] in await queue(english_reviewer)

    await eventually(sees_swahili, timeout=5, what="the new languages in content")
    approved = await content.review(english_reviewer, swahili)
    assert approved.status_code == 200, approved.text
    # Declaring nothing means every language.
    await set_review_languages(content, swahili_reviewer)

    async def sees_english() -> bool:
        return english["id"] in await queue(swahili_reviewer)

    await eventually(sees_english, timeout=5, what="every language in content")


async def test_a_submission_waiting_too_long_is_marked_overdue(content: ContentHarness) -> None:
    author = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    waiting = await content.submitted(author)
    fresh = await content.submitted(author)
    days = content.settings.review_overdue_days
    async with content.resources.session_factory() as session:
        await session.execute(
            update(Submission)
            .where(Submission.id == uuid.UUID(waiting["id"]))
            .values(submitted_at=datetime.now(UTC) - timedelta(days=days, minutes=1))
        )
        await session.commit()
    page = await content.http.get(
        "/v1/submissions", params={"every_language": "true"}, headers=reviewer.headers
    )
    overdue = {s["id"]: s["overdue"] for s in page.json()["items"]}
    assert (overdue[waiting["id"]], overdue[fresh["id"]]) == (True, False)


async def test_credits_name_people_and_only_accounts_that_took_part(
    content: ContentHarness,
) -> None:
    """#37 F9: a translator's `credited_as` could claim the original with licence text,
    `credits[].account_id` took any account, and en to en-GB was a "translation"."""
    author = await content.account(Role.VOLUNTEER)
    translator = await content.account(Role.VOLUNTEER)
    stranger = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    http = content.http
    original = await content.published_book(author=author, reviewer=reviewer, admin=admin)

    claim = await http.post(
        f"/v1/books/{original['id']}/derivations",
        json={
            "kind": "translation",
            "language": "sw",
            "credited_as": "Neema (original author), CC BY 4.0",
        },
        headers=translator.headers,
    )
    assert_problem(claim, 422)
    variant = await http.post(
        f"/v1/books/{original['id']}/derivations",
        json={"kind": "translation", "language": "en-GB"},
        headers=translator.headers,
    )
    assert_problem(variant, 422, "translation-same-language")

    # An account credited on a new story must be its author's own.
    credited_stranger = await http.post(
        "/v1/submissions",
        json={
            **STORY,
            "credits": [{"role": "illustrator", "name": "Someone", "account_id": str(stranger.id)}],
        },
        headers=author.headers,
    )
    body = assert_problem(credited_stranger, 422, "credit-account-not-a-participant")
    assert body["account_ids"] == [str(stranger.id)]
    by_name = await http.post(
        "/v1/submissions",
        json={**STORY, "credits": [{"role": "illustrator", "name": "Someone"}]},
        headers=author.headers,
    )
    assert by_name.status_code == 201, by_name.text

    # A translation may credit the family's own people, not anyone.
    draft = await derive(content, translator, original["id"], kind="translation", language="sw")
    own = [
        *draft["credits"],
        {"role": "illustrator", "name": "Amina", "account_id": str(author.id)},
    ]
    taken = await http.patch(
        f"/v1/submissions/{draft['id']}",
        json={"credits": own},
        headers={**translator.headers, "If-Match": f'"{draft["version"]}"'},
    )
    assert taken.status_code == 200, taken.text
    foreign = [*own, {"role": "illustrator", "name": "Zed", "account_id": str(stranger.id)}]
    refused = await http.patch(
        f"/v1/submissions/{draft['id']}",
        json={"credits": foreign},
        headers={**translator.headers, "If-Match": f'"{taken.json()["version"]}"'},
    )
    assert_problem(refused, 422, "credit-account-not-a-participant")


async def test_regional_variants_share_one_slot_of_the_family(content: ContentHarness) -> None:
    """#37 F9: one published version per family, language and level, where pt and
    pt-BR are one language: publishing the second retires the first."""
    author, translator = (
        await content.account(Role.VOLUNTEER),
        await content.account(Role.VOLUNTEER),
    )
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    people = {"author": translator, "reviewer": reviewer, "admin": admin}
    original = await content.published_book(author=author, reviewer=reviewer, admin=admin)
    first = await derive(content, translator, original["id"], kind="translation", language="pt")
    portuguese = await publish_submission(content, first, **people)
    second = await derive(content, translator, original["id"], kind="translation", language="pt-BR")
    brazilian = await publish_submission(content, second, **people)
    older = await content.http.get(f"/v1/books/{portuguese['id']}", headers=admin.headers)
    assert older.json()["status"] == "UNPUBLISHED"
    assert older.json()["superseded_by"] == brazilian["id"]
