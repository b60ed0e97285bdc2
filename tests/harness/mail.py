"""A real SMTP server for tests (aiosmtpd, on 127.0.0.1): access's worker sends to
it as it would to any relay, and tests read what arrived."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from stories.emulator import free_port


class MailCatcher:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[EmailMessage] = []
        # Addresses the server answers 550 for (no such mailbox).
        self.unknown: set[str] = set()
        self._controller: Controller | None = None

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook names
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.unknown:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(message)
        return "250 Message accepted"

    def start(self) -> MailCatcher:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.received if m["To"] == address]

    async def wait_for(
        self, address: str, count: int = 1, timeout: float = 20.0
    ) -> list[EmailMessage]:
        """The first `count` mails to `address`, once they have arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.to(address)) < count:
            if loop.time() > deadline:
                raise AssertionError(f"{count} mail(s) to {address} never arrived")
            await asyncio.sleep(0.05)
        return self.to(address)[:count]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content


def link_in(message: EmailMessage, found: Callable[[str], bool] = lambda _: True) -> str:
    """The first link of the mail's text (that `found` accepts)."""
    links: list[str] = [
        link for link in re.findall(r"https?://\S+", text_of(message)) if found(link)
    ]
    assert links, text_of(message)
    return links[0]
