"""Sending mail: one small interface, SMTP or Amazon SES behind it.

Who sends (access's mail outbox, services/access/mail_outbox.py) never blocks a
request on a mail server: it stores the mail, and its worker hands it to one of
these, with a deadline, and tells a refusal that will not change (a 5xx: the
address does not exist) from one that may (the server is down, a 4xx): the first
is given up on, the second is tried again later.

The message id is the caller's (the outbox row's), so a mail sent again after a
crash between "accepted" and "recorded" carries the same Message-ID and mail
clients show it once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Protocol

from shared.contracts.clock import now_utc

# Each hand-over to a mail server has this long, connecting included: the worker
# then moves on, and the mail waits for its next turn.
SEND_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    # Unique per mail, kept across retries (see the module's docstring).
    message_id: str

    def message(self, sender: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Date"] = format_datetime(now_utc())
        domain = sender.rpartition("@")[2].rstrip(">") or "localhost"
        message["Message-ID"] = f"<{self.message_id}@{domain}>"
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
        message.set_content(self.text)
        return message


class MailDeferredError(Exception):
    """Not sent, but it may be later: the server is away, slow, or said 4xx."""


class MailRefusedError(Exception):
    """Not sent, and sending again will not change that (a 5xx for this address)."""


class MailSender(Protocol):
    async def send(self, mail: Mail) -> None:
        """Hand `mail` over or raise MailDeferredError / MailRefusedError."""


@dataclass(frozen=True)
class SmtpSender:
    """Any SMTP server: aiosmtpd in the embedded run and the tests, a relay elsewhere."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    start_tls: bool = False
    timeout: float = SEND_TIMEOUT_SECONDS

    async def send(self, mail: Mail) -> None:
        import aiosmtplib

        try:
            await aiosmtplib.send(
                mail.message(self.sender),
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                start_tls=self.start_tls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [error.code for error in exc.recipients]
            raise _by_code(min(codes, default=451), "the server refused the address") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _by_code(exc.code, exc.message) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise MailDeferredError(
                f"the mail server is not answering ({type(exc).__name__})"
            ) from exc


def _by_code(code: int, message: str) -> Exception:
    text = f"SMTP {code}: {message}"
    return MailRefusedError(text) if 500 <= code < 600 else MailDeferredError(text)


# SES's refusals that no retry changes; everything else (throttling, a 5xx of
# its own, the network) is tried again.
SES_REFUSALS = frozenset(
    {"MessageRejected", "MailFromDomainNotVerifiedException", "BadRequestException"}
)


@dataclass(frozen=True)
class SesSender:
    """Amazon SES (v2 API), from the task role: the identity and the permission
    to send from it are Terraform's (infra/platform/mail.tf)."""

    client: Any  # an aioboto3 sesv2 client
    sender: str
    timeout: float = SEND_TIMEOUT_SECONDS

    async def send(self, mail: Mail) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            await asyncio.wait_for(
                self.client.send_email(
                    FromEmailAddress=self.sender,
                    Destination={"ToAddresses": [mail.to]},
                    Content={"Raw": {"Data": mail.message(self.sender).as_bytes()}},
                ),
                timeout=self.timeout,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in SES_REFUSALS:
                raise MailRefusedError(f"SES: {code}") from exc
            raise MailDeferredError(f"SES: {code or 'error'}") from exc
        except (TimeoutError, BotoCoreError, OSError) as exc:
            raise MailDeferredError(f"SES is not answering ({type(exc).__name__})") from exc
