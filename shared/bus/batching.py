"""Group commit: many requests' small writes committed in one transaction.

A hot path whose write is small (a PDF opened, a page turned) cannot afford a
transaction per request. Each `submit` waits until a commit carrying its item
has finished and returns that item's result, so an answer still means the
write is durable; a failed commit fails every request in it with a 503 and
Retry-After (nothing is answered that was not kept). Requests that arrive
while a batch commits form the next batch: under load one commit carries
dozens of items; alone, an item commits at once. A few commits may be in
flight together, each on its own connection, so a batch does not wait for the
previous one's fsync.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

from shared.contracts.errors import ServiceUnavailable

log = structlog.get_logger(__name__)


class CommitFailed(ServiceUnavailable):
    """The database refused or lost a batch: nothing in it was kept; try again."""

    code = "commit-failed"
    RETRY_AFTER_SECONDS = 1


T = TypeVar("T")
R = TypeVar("R")


class CommitBatcher(Generic[T, R]):
    def __init__(
        self,
        commit: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        name: str,
        max_batch: int = 500,
        max_in_flight: int = 3,
    ) -> None:
        """`commit(items)` writes a batch in one transaction and returns one result per item."""
        self._commit_batch = commit
        self._name = name
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight = 0

    async def submit(self, item: T) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._flush())
        return await done

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let the requests already running add theirs
            while self._pending:
                await self._commit(self._pending[: self._max_batch])
        finally:
            self._in_flight -= 1

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        del self._pending[: len(batch)]
        try:
            results = await self._commit_batch([item for item, _ in batch])
        except Exception as exc:
            log.exception("group commit failed", batch=self._name, items=len(batch))
            for _, done in batch:
                if not done.done():
                    failed = CommitFailed("This could not be saved right now; nothing was kept.")
                    failed.__cause__ = exc
                    done.set_exception(failed)
            return
        for (_, done), result in zip(batch, results, strict=True):
            if not done.done():
                done.set_result(result)
