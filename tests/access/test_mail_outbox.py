"""#41: access's mail outbox against a real SMTP server (aiosmtpd) and the real
database: a mail is sent once, waits while the server is down, is never lost,
and one the server refuses for good is given up (and logged without its address)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.access.mail_outbox import MailCourier, mail_sender, queue_mail
from services.access.models import MailMessage
from shared.clients.mail import Mail, MailDeferredError, MailRefusedError, SesSender, SmtpSender
from stories.emulator import free_port
from tests.harness.access import AccessHarness, running_access_harness
from tests.harness.mail import MailCatcher, text_of


@pytest.fixture(scope="module")
async def access(database_url: str, moto_url: str) -> AsyncIterator[AccessHarness]:
    # No worker runs here: each test drives the courier itself.
    async with running_access_harness(database_url, moto_url) as harness:
        yield harness


async def queued(access: AccessHarness, *addresses: str) -> None:
    async with access.resources.session_factory() as session:
        for address in addresses:
            queue_mail(session, kind="test", to=address, subject="Hello", body=f"For {address}")
        await session.commit()


async def waiting(access: AccessHarness, address: str) -> list[MailMessage]:
    async with access.resources.session_factory() as session:
        return list(
            await session.scalars(select(MailMessage).where(MailMessage.to_address == address))
        )


def courier(access: AccessHarness, port: int) -> MailCourier:
    sender = SmtpSender("127.0.0.1", port, "Stories <no-reply@stories.example.org>", timeout=2)
    return MailCourier(access.resources.session_factory, sender, first_retry_seconds=0.2)


async def test_a_mail_waits_while_the_server_is_down_and_is_sent_once_it_is_back(
    access: AccessHarness, caplog: pytest.LogCaptureFixture
) -> None:
    address = f"patient-{uuid.uuid4().hex[:8]}@example.org"
    await queued(access, address)
    port = free_port()  # nothing listens there yet
    first = await courier(access, port).send_due()
    assert first["deferred"] >= 1
    [row] = await waiting(access, address)
    assert row.attempts == 1
    assert row.last_error
    assert row.next_attempt_at > datetime.now(UTC)  # later, not at once
    again = await courier(access, port).send_due(datetime.now(UTC) + timedelta(seconds=1))
    assert again["deferred"] >= 1
    [row] = await waiting(access, address)
    assert row.attempts == 2  # and each wait longer than the last

    catcher = MailCatcher(port).start()
    try:
        await courier(access, port).send_due(datetime.now(UTC) + timedelta(minutes=5))
        [arrived] = await catcher.wait_for(address)
        assert text_of(arrived).strip() == f"For {address}"
        assert arrived["Message-ID"] == f"<{row.id}@stories.example.org>"
        assert await waiting(access, address) == []
        # Nothing left to send it again.
        await courier(access, port).send_due(datetime.now(UTC) + timedelta(minutes=5))
        await asyncio.sleep(0.2)
        assert len(catcher.to(address)) == 1
    finally:
        catcher.stop()
    assert address not in caplog.text  # logged by kind and id only


async def test_two_workers_at_once_send_each_mail_once(access: AccessHarness) -> None:
    catcher = MailCatcher().start()
    try:
        addresses = [f"once-{i}-{uuid.uuid4().hex[:6]}@example.org" for i in range(25)]
        await queued(access, *addresses)
        couriers = [courier(access, catcher.port) for _ in range(3)]
        later = datetime.now(UTC) + timedelta(minutes=5)
        for _ in range(6):
            await asyncio.gather(*(c.send_due(later) for c in couriers))
        for address in addresses:
            await catcher.wait_for(address)
        await asyncio.sleep(0.2)
        assert sorted(m["To"] for m in catcher.received if m["To"] in addresses) == sorted(
            addresses
        )
        async with access.resources.session_factory() as session:
            left = await session.scalar(
                select(func.count())
                .select_from(MailMessage)
                .where(MailMessage.to_address.in_(addresses))
            )
        assert left == 0
    finally:
        catcher.stop()


async def test_a_mailbox_that_does_not_exist_is_given_up_and_the_others_still_go(
    access: AccessHarness,
) -> None:
    catcher = MailCatcher().start()
    try:
        gone, fine = (f"{n}-{uuid.uuid4().hex[:6]}@example.org" for n in ("gone", "fine"))
        catcher.unknown.add(gone)
        await queued(access, gone, fine)
        counts = await courier(access, catcher.port).send_due(
            datetime.now(UTC) + timedelta(minutes=5)
        )
        assert counts["refused"] >= 1
        await catcher.wait_for(fine)
        assert catcher.to(gone) == []
        assert await waiting(access, gone) == []
    finally:
        catcher.stop()


async def test_the_smtp_sender_tells_a_refusal_from_a_server_away() -> None:
    catcher = MailCatcher().start()
    try:
        sender = SmtpSender("127.0.0.1", catcher.port, "no-reply@stories.example.org", timeout=2)
        catcher.unknown.add("nobody@example.org")
        with pytest.raises(MailRefusedError):
            await sender.send(Mail("nobody@example.org", "Hi", "text", "id-1"))
        await sender.send(Mail("somebody@example.org", "Hi", "text", "id-2"))
        assert len(catcher.to("somebody@example.org")) == 1
    finally:
        catcher.stop()
    away = SmtpSender("127.0.0.1", free_port(), "no-reply@stories.example.org", timeout=2)
    with pytest.raises(MailDeferredError):
        await away.send(Mail("somebody@example.org", "Hi", "text", "id-3"))


async def test_the_settings_choose_smtp_or_ses(access: AccessHarness) -> None:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        assert isinstance(await mail_sender(access.settings, stack), SmtpSender)
        ses = access.settings.model_copy(update={"mail_transport": "ses"})
        assert isinstance(await mail_sender(ses, stack), SesSender)


async def test_ses_sends_from_a_verified_identity_only(
    access: AccessHarness, moto_url: str
) -> None:
    """SES as AWS runs it (moto here): refused for good from an unverified identity,
    sent once Terraform's domain identity exists (infra/platform/mail.tf)."""
    from contextlib import AsyncExitStack

    import httpx

    domain = f"{uuid.uuid4().hex[:8]}.stories.example.org"
    ses = access.settings.model_copy(
        update={"mail_transport": "ses", "mail_from": f"Stories <no-reply@{domain}>"}
    )
    to = f"reader-{uuid.uuid4().hex[:6]}@example.org"
    async with AsyncExitStack() as stack:
        sender = await mail_sender(ses, stack)
        with pytest.raises(MailRefusedError):
            await sender.send(Mail(to, "Hello", "From SES", "ses-1"))
        assert isinstance(sender, SesSender)
        await sender.client.create_email_identity(EmailIdentity=domain)
        await sender.send(Mail(to, "Hello", "From SES", "ses-2"))
    async with httpx.AsyncClient() as http:
        data = (await http.get(f"{moto_url}/moto-api/data.json")).json()
    raw = str(data["ses"]["RawMessage"])
    assert to in raw
    assert f"<ses-2@{domain}>" in raw
    assert "ses-1@" not in raw
