"""A worker's periodic job: one step now and then every `seconds`, until stopped.

A step that fails (the database away, say) is logged and tried again next time;
a step that says it has more to do runs again at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


async def every(
    seconds: float,
    stop: asyncio.Event,
    step: Callable[[], Awaitable[bool]],
    *,
    failure: str,
) -> None:
    """Run `step` until `stop`; it returns True when it left work for another turn."""
    while not stop.is_set():
        try:
            if await step():
                continue
        except Exception as exc:  # again next time: the job heals itself
            log.warning(failure, error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
