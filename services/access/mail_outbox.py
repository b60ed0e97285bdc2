"""Access's mail: written to `mail_outbox` in the transaction that decides to send
it, handed to the mail server by the worker (`send_mail`), deleted once taken.

Access alone sends mail because it alone holds addresses: no other service ever
sees one. A mail is never lost: the server away or saying 4xx, it waits and is
tried again, each time later (ACCESS_MAIL_RETRY_SECONDS, 30 s, doubling to an
hour). It is sent once: a worker takes a batch by moving its rows' next attempt a
lease ahead (PostgreSQL's SKIP LOCKED keeps two workers off the same rows), and
deletes each as the server takes it. Only a crash between the two sends one
again, under the same Message-ID. A refusal that will not change (5xx: no such
mailbox) is given up and logged by kind and id, never by address.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.access.models import MailMessage
from services.access.settings import AccessSettings
from shared.clients.db import unit_of_work
from shared.clients.mail import (
    SEND_TIMEOUT_SECONDS,
    Mail,
    MailDeferredError,
    MailRefusedError,
    MailSender,
    SesSender,
    SmtpSender,
)
from shared.contracts.clock import now_utc
from shared.resources import Resources
from shared.service.periodic import every
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

BATCH = 10
# A taken batch is the worker's this long: well past the time its mails may take.
LEASE = timedelta(seconds=BATCH * SEND_TIMEOUT_SECONDS * 2)
LONGEST_RETRY_SECONDS = 3600.0


def queue_mail(session: AsyncSession, *, kind: str, to: str, subject: str, body: str) -> None:
    """Send this mail once the caller's transaction commits (and only then)."""
    now = now_utc()
    session.add(
        MailMessage(
            id=uuid.uuid4(),
            kind=kind,
            to_address=to,
            subject=subject,
            body=body,
            created_at=now,
            next_attempt_at=now,
            attempts=0,
        )
    )


def retry_delay(attempts: int, first: float) -> timedelta:
    """After the `attempts`-th failure: first, twice that, ... at most an hour."""
    return timedelta(seconds=min(LONGEST_RETRY_SECONDS, first * 2 ** (attempts - 1)))


class MailCourier:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: MailSender,
        *,
        first_retry_seconds: float = 30.0,
    ) -> None:
        self._sessions = sessions
        self._sender = sender
        self._first_retry = first_retry_seconds

    async def send_due(self, now: datetime | None = None) -> dict[str, int]:
        """One batch of the mail that is due: how many were sent, deferred, refused."""
        now = now or now_utc()
        async with unit_of_work(self._sessions) as session:
            taken = list(
                await session.scalars(
                    select(MailMessage)
                    .where(MailMessage.next_attempt_at <= now)
                    .order_by(MailMessage.next_attempt_at, MailMessage.id)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            for message in taken:
                message.next_attempt_at = now + LEASE
            mails = [
                (m.id, m.kind, m.attempts, Mail(m.to_address, m.subject, m.body, str(m.id)))
                for m in taken
            ]
        counts = {"sent": 0, "deferred": 0, "refused": 0}
        for mail_id, kind, attempts, mail in mails:
            try:
                await self._sender.send(mail)
            except MailDeferredError as exc:
                counts["deferred"] += 1
                await self._defer(mail_id, attempts + 1, str(exc))
                log.warning("mail not sent yet", kind=kind, mail_id=str(mail_id),
                            attempts=attempts + 1, error=str(exc))  # fmt: skip
            except MailRefusedError as exc:
                counts["refused"] += 1
                await self._forget(mail_id)
                log.warning(
                    "mail refused for good", kind=kind, mail_id=str(mail_id), error=str(exc)
                )
            else:
                counts["sent"] += 1
                await self._forget(mail_id)
                log.info("mail sent", kind=kind, mail_id=str(mail_id))
        return counts

    async def _defer(self, mail_id: uuid.UUID, attempts: int, error: str) -> None:
        async with unit_of_work(self._sessions) as session:
            await session.execute(
                update(MailMessage)
                .where(MailMessage.id == mail_id)
                .values(
                    attempts=attempts,
                    last_error=error[:300],
                    next_attempt_at=now_utc() + retry_delay(attempts, self._first_retry),
                )
            )

    async def _forget(self, mail_id: uuid.UUID) -> None:
        async with unit_of_work(self._sessions) as session:
            await session.execute(delete(MailMessage).where(MailMessage.id == mail_id))


async def mail_sender(settings: AccessSettings, stack: AsyncExitStack) -> MailSender:
    if settings.mail_transport == "ses":
        import aioboto3

        secret = settings.aws_secret_access_key
        client = await stack.enter_async_context(
            aioboto3.Session(
                aws_access_key_id=settings.aws_access_key_id,
                aws_secret_access_key=secret.get_secret_value() if secret else None,
                region_name=settings.aws_region,
            ).client("sesv2", endpoint_url=settings.aws_endpoint_url)
        )
        return SesSender(client, settings.mail_from)
    password = settings.smtp_password
    return SmtpSender(
        settings.smtp_host,
        settings.smtp_port,
        settings.mail_from,
        username=settings.smtp_username,
        password=password.get_secret_value() if password else None,
        start_tls=settings.smtp_start_tls,
    )


async def send_mail(resources: Resources, settings: ServiceSettings, stop: asyncio.Event) -> None:
    """The worker's job: send what is due, again at once while batches come full,
    else look again after `mail_poll_seconds`."""
    assert isinstance(settings, AccessSettings)
    async with AsyncExitStack() as stack:
        courier = MailCourier(
            resources.session_factory,
            await mail_sender(settings, stack),
            first_retry_seconds=settings.mail_retry_seconds,
        )

        async def step() -> bool:
            return sum((await courier.send_due()).values()) == BATCH

        await every(settings.mail_poll_seconds, stop, step, failure="mail outbox not read")
