"""`ServiceDefinition`: a service declared once. Its app, its worker and the shared
tables its migrations create are built from it the same way for all four."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.middleware import Middleware

from shared.bus.consumer import Handlers
from shared.bus.inbox import InboxEntry
from shared.bus.outbox import OutboxMessage
from shared.contracts.events import Producer
from shared.resources import Resources
from shared.service.app import create_service_app
from shared.service.idempotency import IdempotencyRecord, once
from shared.settings import ServiceSettings

WorkerJob = Callable[[Resources, ServiceSettings, asyncio.Event], Coroutine[Any, Any, None]]


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
ComponentsT = TypeVar("ComponentsT")


@dataclass(frozen=True)
class ServiceDefinition(Generic[SettingsT, ComponentsT]):
    """Everything that makes a service itself; the rest (app, worker, migrations,
    health, errors, telemetry) is built from it the same way for all four."""

    name: str
    title: str
    description: str  # the OpenAPI document's introduction
    settings_class: type[SettingsT]
    routers: Sequence[APIRouter]
    # The service's long-lived parts, built once in the lifespan before the first
    # request and read through the service's typed accessor (its components.py).
    build_components: Callable[
        [SettingsT, Resources, AsyncExitStack], Coroutine[Any, Any, ComponentsT]
    ]
    produces: Producer | None
    handlers: Handlers
    migrations: Path
    default_port: int
    # Pure-ASGI layers answering hot requests before routing (see shared/http/asgi.py).
    fast_paths: Sequence[Middleware] = ()
    # Jobs of the service's own that its worker runs beside the relay and consumer.
    worker_jobs: Sequence[WorkerJob] = ()

    @property
    def platform_tables(self) -> frozenset[str]:
        """The shared tables this service uses, so its migrations create no others:
        an outbox if it produces events, an inbox if it consumes them, idempotency
        keys if any endpoint takes an `Idempotency-Key`."""
        tables = set()
        if self.produces is not None:
            tables.add(OutboxMessage.__tablename__)
        if self.handlers:
            tables.add(InboxEntry.__tablename__)
        if any(
            _depends_on(route.dependant, once)
            for router in self.routers
            for route in router.routes
            if isinstance(route, APIRoute)
        ):
            tables.add(IdempotencyRecord.__tablename__)
        return frozenset(tables)

    def settings_of(self, settings: ServiceSettings | None) -> SettingsT:
        """This service's settings: read from the environment when none are given;
        another service's settings are a mistake, refused rather than replaced."""
        if settings is None:
            return self.settings_class()
        if not isinstance(settings, self.settings_class):
            raise TypeError(
                f"{self.name} needs {self.settings_class.__name__}, not {type(settings).__name__}"
            )
        return settings

    def create_app(
        self, settings: ServiceSettings | None = None, resources: Resources | None = None
    ) -> FastAPI:
        """The service's API. Given Resources, the app shares them instead of opening its own."""
        own_settings = self.settings_of(settings)

        async def start(opened: Resources, stack: AsyncExitStack) -> ComponentsT:
            return await self.build_components(own_settings, opened, stack)

        return create_service_app(
            own_settings,
            title=self.title,
            description=self.description,
            routers=self.routers,
            produces=self.produces,
            start=start,
            resources=resources,
            middleware=self.fast_paths,
        )


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)
