"""The embedded run's mail server: a real SMTP server (aiosmtpd) on loopback that
keeps each mail it receives as a file, so a newcomer trying a child's sign-up opens
the parent's mail (and its consent link) from `.stories/mail/`. Nothing leaves the
machine. Replaced by setting `ACCESS_SMTP_HOST` to a relay of one's own."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class Mailbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{next(self._numbers):04d}.eml"
        path.write_bytes(envelope.original_content)
        # The file, never the address: the log holds no one's personal data.
        log.info("mail received", file=str(path))
        return "250 Message accepted"


def start_mailbox(host: str, port: int, folder: Path) -> Any:
    """A running SMTP server on (host, port) keeping mail in `folder`; `.stop()` ends it."""
    from aiosmtpd.controller import Controller

    controller = Controller(Mailbox(folder), hostname=host, port=port)
    controller.start()
    return controller
