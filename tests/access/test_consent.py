"""#41: parents' consent for children under 13, over real HTTP, with access's worker
sending real mail to a real SMTP server (aiosmtpd) and erasing what nobody agreed to.
What each mail says, and every link in it, is read from the mail as it arrived."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from services.access.consent import ConsentLinks
from services.access.main import SERVICE as ACCESS
from services.access.models import AuditEntry, MailMessage, ParentalConsent, User
from tests.harness import running_workers
from tests.harness.access import PASSWORD, AccessHarness, running_access_harness
from tests.harness.mail import MailCatcher, link_in, text_of
from tests.support import assert_problem

CHILD_YEAR = datetime.now(UTC).year - 9


@pytest.fixture(scope="module")
async def mail() -> AsyncIterator[MailCatcher]:
    catcher = MailCatcher().start()
    yield catcher
    catcher.stop()


@pytest.fixture(scope="module")
async def access(
    database_url: str, moto_url: str, mail: MailCatcher
) -> AsyncIterator[AccessHarness]:
    async with (
        running_access_harness(
            database_url,
            moto_url,
            smtp_port=mail.port,
            mail_poll_seconds=0.1,
            mail_retry_seconds=0.3,
            consent_expiry_check_seconds=0.3,
            public_url="https://stories.example.org",
        ) as harness,
        running_workers((ACCESS, harness)),
    ):
        yield harness


def tag() -> str:
    return uuid.uuid4().hex[:10]


async def sign_up_child(
    access: AccessHarness, *, parent: str | None = None, year: int = CHILD_YEAR
) -> tuple[str, str, dict[str, Any]]:
    """A child's sign-up: (their email, their parent's, the answer)."""
    child, parent = f"child-{tag()}@example.org", parent or f"parent-{tag()}@example.org"
    answer = await access.http.post(
        "/v1/auth/register",
        json={
            "email": child,
            "password": PASSWORD,
            "display_name": "Amani",
            "birth_year": year,
            "parent_email": parent,
        },
    )
    assert answer.status_code == 201, answer.text
    return child, parent, answer.json()


def path(link: str) -> str:
    assert link.startswith("https://stories.example.org/v1/auth/consents/"), link
    return urlsplit(link).path


async def test_a_child_reads_only_after_the_parent_follows_the_link(
    access: AccessHarness, mail: MailCatcher
) -> None:
    child, parent, made = await sign_up_child(access)
    assert made["consent"] == "pending"
    refused = await access.login(child)
    assert_problem(refused, 403, code="parental-consent-pending")

    [asked] = await mail.wait_for(parent)
    assert "Amani" in text_of(asked)
    assert child in text_of(asked)
    assert asked["Message-ID"]
    assert asked["Auto-Submitted"] == "auto-generated"
    give = path(link_in(asked))
    # Opening the link (as a mail scanner does) shows the question and changes nothing.
    page = await access.http.get(give, headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "Amani" in page.text
    assert "<form method=post>" in page.text
    shown = (await access.http.get(give)).json()
    assert shown["purpose"] == "give"
    assert shown["given_at"] is None
    assert_problem(await access.login(child), 403, code="parental-consent-pending")

    agreed = await access.http.post(give, json={"answer": "agree"})
    assert agreed.status_code == 200
    assert agreed.json() == {"consent": "parent"}
    signed_in = await access.login(child)
    assert signed_in.status_code == 200, signed_in.text
    headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    assert (await access.http.get("/v1/users/me", headers=headers)).json()["consent"] == "parent"

    # Email plus: a confirmation follows, with the link to withdraw.
    _, confirmation = await mail.wait_for(parent, 2)
    assert "withdraw" in text_of(confirmation)
    # The consent link once more: a clear answer, nothing changed.
    assert_problem(await access.http.post(give, json={"answer": "agree"}), 409)
    assert_problem(await access.http.post(give, json={"answer": "refuse"}), 409)
    assert (await access.login(child)).status_code == 200
    async with access.resources.session_factory() as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert "consent.given" in actions


async def test_a_withdrawn_consent_erases_the_account(
    access: AccessHarness, mail: MailCatcher
) -> None:
    child, parent, made = await sign_up_child(access)
    [asked] = await mail.wait_for(parent)
    await access.http.post(path(link_in(asked)), json={"answer": "agree"})
    tokens = (await access.login(child)).json()
    _, confirmation = await mail.wait_for(parent, 2)
    withdraw = path(link_in(confirmation))
    page = await access.http.get(withdraw, headers={"Accept": "text/html"})
    assert "Withdraw" in page.text
    # The withdrawal link cannot agree to anything.
    assert_problem(await access.http.post(withdraw, json={"answer": "agree"}), 409)

    form = await access.http.post(
        withdraw,
        content=b"answer=refuse",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 200
    assert "deleted" in form.text
    # Gone: the account, its sessions (the old token refused), its consent record.
    assert_problem(await access.login(child), 401)
    old = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await access.http.get("/v1/users/me", headers=old)).status_code == 401
    async with access.resources.session_factory() as session:
        assert await session.get(User, uuid.UUID(made["id"])) is None
        assert (
            await session.scalar(
                select(ParentalConsent).where(ParentalConsent.user_id == uuid.UUID(made["id"]))
            )
            is None
        )
    erased = [e for e in await access.outbox("user.erased") if e.data["user_id"] == made["id"]]
    assert len(erased) == 1
    assert erased[0].data["erased_by"] is None
    assert_problem(await access.http.post(withdraw, json={"answer": "refuse"}), 410)


async def test_refusing_at_once_erases_and_a_forged_or_stretched_link_learns_nothing(
    access: AccessHarness, mail: MailCatcher
) -> None:
    child, parent, _made = await sign_up_child(access)
    [asked] = await mail.wait_for(parent)
    give = path(link_in(asked))
    token = give.rsplit("/", 1)[1]
    consent_id, purpose, expires, mac = token.split(".")
    forged = [
        f"{consent_id}.{purpose}.{int(expires) + 86400 * 365}.{mac}",  # stretched
        f"{consent_id}.withdraw.0.{mac}",  # turned into another link
        f"{uuid.uuid4().hex}.{purpose}.{expires}.{mac}",  # pointed at another child
        f"{consent_id}.{purpose}.{expires}.{mac[:-2]}AA",
        ConsentLinks(b"a key of someone else's").token(uuid.UUID(consent_id), "give", None),
    ]
    for link in forged:
        for answer in (
            await access.http.get(f"/v1/auth/consents/{link}"),
            await access.http.post(f"/v1/auth/consents/{link}", json={"answer": "agree"}),
        ):
            assert_problem(answer, 404)
            assert "Amani" not in answer.text
    assert_problem(await access.login(child), 403, code="parental-consent-pending")

    assert_problem(await access.http.post(give, json={"answer": "maybe"}), 422)
    refused = await access.http.post(give, json={"answer": "refuse"})
    assert refused.json() == {"consent": "erased"}
    assert_problem(await access.login(child), 401)
    assert_problem(await access.http.get(give), 410)


async def test_an_unanswered_account_is_erased_after_the_window(
    access: AccessHarness, mail: MailCatcher
) -> None:
    child, parent, made = await sign_up_child(access)
    [asked] = await mail.wait_for(parent)
    user_id = uuid.UUID(made["id"])
    async with access.resources.session_factory() as session:
        consent = await session.scalar(
            select(ParentalConsent).where(ParentalConsent.user_id == user_id)
        )
        assert consent is not None
        window = consent.expires_at - consent.requested_at
        assert window == timedelta(days=access.settings.consent_days)
        # The window passes (the clock moved for this row alone; the others wait).
        await session.execute(
            update(ParentalConsent)
            .where(ParentalConsent.user_id == user_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    other_child, _, other = await sign_up_child(access)
    for _ in range(100):
        async with access.resources.session_factory() as session:
            if await session.get(User, user_id) is None:
                break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the unanswered account was never erased")
    async with access.resources.session_factory() as session:
        assert await session.get(User, uuid.UUID(other["id"])) is not None
        reasons = [
            e.after
            for e in await session.scalars(
                select(AuditEntry).where(AuditEntry.subject_id == user_id)
            )
        ]
    assert {"reason": "consent not given in time"} in reasons
    # The link in the mail is now a clear "too late"; the address is free again.
    assert_problem(await access.http.post(path(link_in(asked)), json={"answer": "agree"}), 410)
    again = await access.http.post(
        "/v1/auth/register",
        json={"email": child, "password": PASSWORD, "display_name": "Amani", "birth_year": 1990},
    )
    assert again.status_code == 201
    assert (await access.login(child)).status_code == 200
    assert_problem(await access.login(other_child), 403, code="parental-consent-pending")


async def test_the_age_question_asks_for_a_parent_exactly_when_a_child_could_be_under_13(
    access: AccessHarness, mail: MailCatcher
) -> None:
    this_year = datetime.now(UTC).year

    async def register(year: Any, parent: str | None = None, email: str | None = None) -> Any:
        body: dict[str, Any] = {
            "email": email or f"age-{tag()}@example.org",
            "password": PASSWORD,
            "display_name": "Age",
            "birth_year": year,
        }
        if parent is not None:
            body["parent_email"] = parent
        return await access.http.post("/v1/auth/register", json=body)

    # Born 13 years ago: maybe 12 still. Born 14 years ago: 13 at least.
    assert_problem(await register(this_year - 13), 422, code="parent-email-required")
    teen = await register(this_year - 14, parent=f"unused-{tag()}@example.org")
    assert teen.status_code == 201
    assert teen.json()["consent"] == "not-needed"
    assert (await access.login(teen.json()["email"])).status_code == 200
    me = f"self-{tag()}@example.org"
    assert_problem(
        await register(2020, parent=me, email=me), 422, code="parent-email-is-the-childs"
    )
    assert_problem(await register(this_year + 1), 422)
    assert_problem(await register(this_year - 121), 422)
    assert_problem(await register(2020, parent="not an address"), 422)
    await asyncio.sleep(0.5)  # the worker's turn: nothing was queued for any of these
    assert mail.to(me) == []
    async with access.resources.session_factory() as session:
        queued = list(await session.scalars(select(MailMessage.to_address)))
    assert not any(a.startswith("unused-") for a in queued)


async def test_one_parent_address_is_asked_a_few_times_a_day_at_most(
    database_url: str, moto_url: str, mail: MailCatcher
) -> None:
    async with running_access_harness(
        database_url, moto_url, consent_requests_per_parent=2, smtp_port=mail.port
    ) as access:
        parent = f"busy-{tag()}@example.org"
        await sign_up_child(access, parent=parent)
        await sign_up_child(access, parent=parent.upper())  # the same address
        child = f"third-{tag()}@example.org"
        third = await access.http.post(
            "/v1/auth/register",
            json={
                "email": child,
                "password": PASSWORD,
                "display_name": "Third",
                "birth_year": CHILD_YEAR,
                "parent_email": parent,
            },
        )
        assert_problem(third, 429, code="too-many-consent-requests")
        assert int(third.headers["Retry-After"]) > 0
        async with access.resources.session_factory() as session:
            assert await session.scalar(select(User).where(User.email == child)) is None


async def test_class_accounts_stand_under_the_schools_consent(access: AccessHarness) -> None:
    from shared.contracts.roles import Role

    teacher = await access.account(Role.TEACHER)
    _, _, reader = await access.class_account(teacher, "Zawadi")
    me = await access.http.get("/v1/users/me", headers=reader.headers)
    assert me.json()["consent"] == "school"
