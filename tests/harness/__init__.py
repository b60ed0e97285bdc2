"""The services as tests run them: one harness per service (a running app over
real HTTP, its settings and resources), registered as fixtures for every area
by tests/conftest.py, and their workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from shared.resources import Resources
from shared.service.definition import ServiceDefinition
from shared.service.runtime import run_worker


class RunningService(Protocol):
    settings: Any
    resources: Resources


@asynccontextmanager
async def running_workers(
    *services: tuple[ServiceDefinition[Any, Any], RunningService],
) -> AsyncIterator[None]:
    """Each service's outbox relay and consumer, as `stories worker` runs them,
    sharing the harness's resources; stopped (and awaited) on the way out."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_worker(definition, harness.settings, stop, harness.resources))
        for definition, harness in services
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)
