"""How many deep checks of manuscripts one process runs at once, and how many wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from shared.contracts.errors import ServiceUnavailable


class ChecksBusy(ServiceUnavailable):
    """Every place for a deep check in this process is taken, and so is every place
    in the line for one: the author submits again in a moment."""

    code = "manuscript-checks-busy"
    RETRY_AFTER_SECONDS = 5

    def __init__(self, detail: str | None = None, **kw: object) -> None:
        super().__init__(
            detail or "Too many manuscripts are being checked right now; submit again shortly.",
            **kw,
        )


class CheckQueue:
    """At most `at_once` deep checks run in this process, and at most `waiting` more
    wait for a place; past that a submit is refused at once (503, Retry-After).

    Each check's child may use up to its memory limit (hostile files reach it), so
    an unbounded number of them would take the task down with them; Terraform sizes
    content's task for `at_once` checks beside the service itself."""

    def __init__(self, *, at_once: int, waiting: int) -> None:
        self._places = asyncio.Semaphore(at_once)
        self._admitted = 0
        self._capacity = at_once + waiting

    @property
    def admitted(self) -> int:
        """Checks running or waiting now."""
        return self._admitted

    @asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        if self._admitted >= self._capacity:
            raise ChecksBusy()
        self._admitted += 1
        try:
            async with self._places:
                yield
        finally:
            self._admitted -= 1
