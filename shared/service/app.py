"""The app factory: one FastAPI app per service, built the same way for all four
(services are built through their ServiceDefinition, shared/service/runtime.py).

Clients are opened in the lifespan (shared/resources.py), never at import; the
health routes (shared/service/health.py) and the OpenAPI document (shared/http/openapi.py)
are the same for every service.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline
from starlette.middleware import Middleware

from shared.contracts.events import Producer
from shared.http.middleware import CorsPolicy, RequestContextMiddleware
from shared.http.openapi import document_bearer_auth
from shared.http.problems import (
    ProblemDetail,
    install_problem_handlers,
)
from shared.http.tracing import TracingMiddleware
from shared.observe.telemetry import Telemetry
from shared.observe.tracing import tracing_enabled
from shared.resources import Resources, open_resources
from shared.service.health import (
    ReadinessCheck,
    aws_readiness_check,
    check_database,
    check_redis,
    check_redis_mirrors,
    health_router,
)
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

DOCS_ASSETS = "/docs-assets"


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    produces: Producer | None,
    start: Callable[[Resources, AsyncExitStack], Awaitable[object]] | None = None,
    resources: Resources | None = None,
    middleware: Sequence[Middleware] = (),
) -> FastAPI:
    """Assemble a service: lifespan-built clients, health, metrics, errors, CORS, request ids.

    `start` builds the service's components (kept as `app.state.components`, read
    through `components_of`) before the first request. Passing `resources` lets a
    caller that already owns them (a test, the embedded run) share them; the app
    then neither opens nor closes them. Services are built through their
    `ServiceDefinition` (shared/service/runtime.py), not by calling this directly.
    """
    telemetry = resources.telemetry if resources else Telemetry(settings.service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            opened = resources or await open_resources(settings, stack, telemetry)
            app.state.resources = opened
            if start is not None:
                app.state.components = await start(opened, stack)
            if produces is not Producer.ACCESS:  # access issues the credentials
                prefetching = asyncio.create_task(opened.prefetch_credentials())
                stack.callback(prefetching.cancel)
            # Everything built so far (modules, clients, caches) lives as long as
            # the process; moving it out of the collector's sight turns the
            # ~60 ms full collections over a large heap into short ones, which
            # is most of a service's p99 under load.
            gc.freeze()
            yield

    # /docs and /redoc with their assets served from here, not a CDN: they work
    # offline and on school networks that block CDNs.
    app = FastAPIOffline(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        responses={422: {"model": ProblemDetail}, 500: {"model": ProblemDetail}},
        static_url=DOCS_ASSETS,
        # Server spans come from shared/http/tracing.py's middleware when tracing is on;
        # FastAPI's own telemetry would double them at several times the cost.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_problem_handlers(app)
    document_bearer_auth(app)
    checks: dict[str, ReadinessCheck] = {
        "database": check_database,
        "redis": check_redis,
        "redis_mirrors": check_redis_mirrors,
        "aws": aws_readiness_check(settings.service_name, produces),
    }
    for router in routers:
        app.include_router(router)
    # Routes match in order: the service's own (hot) routes go first.
    app.include_router(health_router(checks))
    # A service's own middleware runs inside the shared one, so its answers
    # still carry request ids and CORS headers and are counted.
    for layer in reversed(middleware):
        app.add_middleware(layer.cls, *layer.args, **layer.kwargs)
    app.add_middleware(
        RequestContextMiddleware,
        telemetry=telemetry,
        cors=CorsPolicy(settings.cors_origins),
        max_body_bytes=settings.max_body_bytes,
        log_requests=settings.log_requests,
    )
    if tracing_enabled(settings):  # outermost: the request's own log lines name its trace
        app.add_middleware(
            TracingMiddleware,
            sample_ratio=settings.tracing_sample_ratio,
            max_per_second=settings.tracing_max_traces_per_second,
        )
    return app
