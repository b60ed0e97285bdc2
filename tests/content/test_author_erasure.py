"""#41: a volunteer erases their own account (`DELETE /v1/users/me`), and content,
hearing access's `user.erased`, forgets them: their unpublished work and its files
go, their published book stays with its credit under a pseudonym, and another
volunteer's work is untouched. Over real HTTP, with both services' workers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from services.content.erasure import pseudonym
from services.content.models import Book, Submission
from shared.contracts.roles import Role
from tests.harness.access import AccessHarness
from tests.harness.content import ContentHarness
from tests.support import assert_problem, eventually

# Both services' relays and consumers (tests/content/conftest.py).
pytestmark = pytest.mark.usefixtures("workers")


def credit(name: str, account: Any) -> list[dict[str, str]]:
    return [{"role": "author", "name": name, "account_id": str(account.id)}]


async def test_an_erased_volunteer_is_forgotten_and_their_book_credited_to_a_pseudonym(
    access: AccessHarness, content: ContentHarness
) -> None:
    volunteer = await content.account(Role.VOLUNTEER)
    other = await content.account(Role.VOLUNTEER)
    reviewer = await content.account(Role.STORY_MANAGER)
    admin = await content.account(Role.CONTENT_ADMIN)
    book = await content.published_book(
        author=volunteer,
        reviewer=reviewer,
        admin=admin,
        title="Wanjiru's Lion",
        credits=credit("Wanjiru Kamau", volunteer),
    )
    draft = await content.create(volunteer, title="Wanjiru's Draft")
    uploaded = await content.upload(volunteer, draft["id"])
    assert uploaded.status_code in (200, 201, 204)
    kept = await content.create(other, title="Someone Else's", credits=credit("Achieng", other))

    async with content.resources.session_factory() as session:
        row = await session.get(Submission, uuid.UUID(draft["id"]))
        assert row is not None
        assert row.upload_key
        upload_key = row.upload_key
    s3, bucket = content.resources.aws.s3, content.settings.resource_names.bucket("uploads")
    assert (await s3.list_object_versions(Bucket=bucket, Prefix=upload_key)).get("Versions")

    erased = await access.http.delete("/v1/users/me", headers=volunteer.headers)
    assert erased.status_code == 204, erased.text
    assert_problem(await access.login(volunteer.email), 401)

    async def forgotten() -> bool:
        async with content.resources.session_factory() as session:
            return await session.get(Submission, uuid.UUID(draft["id"])) is None

    await eventually(forgotten, timeout=30, what="the erased volunteer's draft gone")
    async with content.resources.session_factory() as session:
        published = await session.get(Book, uuid.UUID(book["id"]))
        assert published is not None
        assert published.status == "PUBLISHED"
        assert published.credits == [
            {"role": "author", "name": pseudonym(volunteer.id), "account_id": None}
        ]
        theirs = await session.scalar(
            select(Submission).where(Submission.id == uuid.UUID(kept["id"]))
        )
        assert theirs is not None
        assert theirs.credits == credit("Achieng", other)
    listed = await s3.list_object_versions(Bucket=bucket, Prefix=upload_key)
    assert not listed.get("Versions")
    assert not listed.get("DeleteMarkers")
    # The catalog shows the book under the pseudonym, and the name nowhere.
    shown = await content.http.get(f"/v1/books/{book['id']}")
    assert "Wanjiru Kamau" not in shown.text
    assert pseudonym(volunteer.id) in shown.text


async def test_staff_ask_an_admin_and_an_admin_erases_a_volunteer_not_a_manager(
    access: AccessHarness,
) -> None:
    manager = await access.account(Role.STORY_MANAGER)
    assert_problem(
        await access.http.delete("/v1/users/me", headers=manager.headers),
        409,
        code="staff-erased-by-admin",
    )
    admin = await access.account(Role.ADMIN)
    assert_problem(await access.http.delete(f"/v1/users/{manager.id}", headers=admin.headers), 409)
    volunteer = await access.account(Role.VOLUNTEER)
    teacher = await access.account(Role.TEACHER)
    # A teacher erases class accounts of their own classes only.
    assert_problem(
        await access.http.delete(f"/v1/users/{volunteer.id}", headers=teacher.headers), 404
    )
    gone = await access.http.delete(f"/v1/users/{volunteer.id}", headers=admin.headers)
    assert gone.status_code == 204
    erased = [
        e for e in await access.outbox("user.erased") if e.data["user_id"] == str(volunteer.id)
    ]
    assert [e.data["erased_by"] for e in erased] == [str(admin.id)]
    assert_problem(await access.http.delete("/v1/users/me"), 401)
