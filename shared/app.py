"""The app factory: one FastAPI app per service, built the same way for all four.

Clients are created in the lifespan, never at import, and handed out by small
dependencies (`SessionDep`, `ResourcesDep`). The worker process builds the same
`Resources` through `open_resources`, so API and worker share one definition.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import httpx
import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware

from shared.access_client import AccessClient
from shared.auth import JwksKeyCache, TokenDenyList, TokenVerifier, bearer_auth_of
from shared.aws import AwsClients, open_aws_clients
from shared.db import create_engine, create_session_factory, has_work
from shared.decisions import DecisionCache
from shared.errors import PROBLEM_CONTENT_TYPE
from shared.events import Producer
from shared.middleware import CorsPolicy, RequestContextMiddleware
from shared.problems import (
    Problem,
    ProblemDetail,
    install_problem_handlers,
    problem_response,
)
from shared.pubsub import InvalidationBus
from shared.redis import RedisCircuit, create_redis
from shared.settings import ServiceSettings
from shared.telemetry import Telemetry
from shared.topology import SUBSCRIPTIONS, topic_arn
from shared.tracing import TracingMiddleware, configure_tracing, trace_database, tracing_enabled

log = structlog.get_logger(__name__)


@dataclass
class Resources:
    settings: ServiceSettings
    telemetry: Telemetry
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    redis: Redis
    redis_circuit: RedisCircuit
    aws: AwsClients
    http: httpx.AsyncClient
    bus: InvalidationBus
    denylist: TokenDenyList
    decisions: DecisionCache
    verifier: TokenVerifier
    access: AccessClient
    # Called when a session commits outbox events; the worker points it at its relay.
    relay_wakers: list[Callable[[], None]] = field(default_factory=list)

    _topic_arns: dict[Producer, str] = field(default_factory=dict)

    async def events_topic_arn(self, producer: Producer) -> str:
        """The producer's topic ARN: from settings when deployed, else asked of SNS once."""
        if producer not in self._topic_arns:
            configured = self.settings.events_topic_arn
            self._topic_arns[producer] = configured or await topic_arn(
                self.aws.sns, self.settings.resource_names, producer
            )
        return self._topic_arns[producer]

    def wake_relays(self) -> None:
        for wake in self.relay_wakers:
            wake()


async def open_resources(
    settings: ServiceSettings, stack: AsyncExitStack, telemetry: Telemetry | None = None
) -> Resources:
    engine = create_engine(
        settings.database_url,
        schema=settings.database_schema,
        pool_size=settings.database_pool_size,
        pool_timeout=settings.database_pool_timeout_seconds,
    )
    stack.push_async_callback(engine.dispose)
    if configure_tracing(settings, settings.service_name):
        trace_database(engine, settings)
    telemetry = telemetry or Telemetry(settings.service_name)
    circuit = RedisCircuit(
        settings.redis_circuit_seconds, on_change=telemetry.redis_circuit_open.set
    )
    redis = create_redis(
        settings.redis_url, timeout_seconds=settings.redis_timeout_seconds, circuit=circuit
    )
    stack.push_async_callback(redis.aclose)
    aws = await open_aws_clients(settings, stack)
    http = await stack.enter_async_context(
        httpx.AsyncClient(timeout=httpx.Timeout(5.0), limits=httpx.Limits(max_connections=100))
    )
    bus = InvalidationBus(redis)
    denylist = TokenDenyList(redis, bus)
    mirrors = telemetry.redis_mirror_synced
    mirrors.labels(mirror="invalidations").set_function(lambda: float(bus.connected))
    mirrors.labels(mirror="denylist").set_function(lambda: float(denylist.synced))
    verifier = TokenVerifier(
        keys=JwksKeyCache(
            jwks_url=settings.jwks_url,
            http=http,
            refetch_interval=settings.jwks_refetch_interval_seconds,
            max_age=settings.jwks_cache_seconds,
        ),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        is_revoked=denylist.is_denied,
    )
    decisions = DecisionCache(
        redis,
        bus,
        local_ttl=settings.decision_cache_seconds,
        shared_ttl=max(1, round(2 * settings.decision_cache_seconds)),
    )
    resources = Resources(
        settings=settings,
        telemetry=telemetry,
        redis_circuit=circuit,
        engine=engine,
        session_factory=create_session_factory(engine),
        redis=redis,
        aws=aws,
        http=http,
        bus=bus,
        denylist=denylist,
        decisions=decisions,
        verifier=verifier,
        access=AccessClient(settings, http, decisions),
    )
    stop_bus = asyncio.Event()
    listening = asyncio.create_task(bus.run(stop_bus))

    async def stop_listening() -> None:
        stop_bus.set()
        await listening

    stack.push_async_callback(stop_listening)
    resources.session_factory.configure(info={"wake_outbox_relay": resources.wake_relays})
    return resources


ComponentsT = TypeVar("ComponentsT")


def resources_of(app: Starlette) -> Resources:
    """The app's Resources, opened in its lifespan."""
    resources = getattr(app.state, "resources", None)
    if not isinstance(resources, Resources):
        raise RuntimeError("the app has not started: no resources yet")
    return resources


def components_of(app: Starlette, kind: type[ComponentsT]) -> ComponentsT:
    """The service's own components (built in the lifespan by its ServiceDefinition),
    typed: asking for another service's kind fails loudly instead of misreading."""
    components = getattr(app.state, "components", None)
    if not isinstance(components, kind):
        raise RuntimeError(f"the app has no {kind.__name__}: not started, or another service")
    return components


def started_parts(app: Starlette, kind: type[ComponentsT]) -> tuple[Resources, ComponentsT] | None:
    """Resources and components once the app has started, else None: a fast path
    in front of an app that is still starting passes the request on."""
    resources = getattr(app.state, "resources", None)
    components = getattr(app.state, "components", None)
    if isinstance(resources, Resources) and isinstance(components, kind):
        return resources, components
    return None


async def get_resources(request: Request) -> Resources:
    # async: FastAPI runs plain-def dependencies in a thread pool, at a real cost per request.
    return resources_of(request.app)


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed if the endpoint succeeds, else rolled back."""
    async with resources.session_factory() as session:
        try:
            yield session
            # A request that never touched the database (a cache hit) has nothing
            # to commit; skipping the call saves ~0.1 ms of greenlet round trip.
            if has_work(session):
                await session.commit()
        except Problem as refusal:
            if refusal.commit_changes:
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise


# scope="function": commit before the response is sent, so a failed commit is
# the client's error response rather than a 200 for work that never landed.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

ReadinessCheck = Callable[[Resources], Awaitable[None]]


async def check_database(resources: Resources) -> None:
    async with resources.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def check_redis(resources: Resources) -> None:
    await resources.redis.ping()


async def check_redis_mirrors(resources: Resources) -> None:
    """The in-process copies of Redis state: the subscription that keeps them
    current, and the deny-list's full copy (each heals on its own after Redis
    returns, with backoff)."""
    if not resources.bus.connected:
        raise RuntimeError("invalidations not subscribed")
    if not resources.denylist.synced:
        raise RuntimeError("deny-list not loaded")


# Without these the service still answers (degraded: README, Degraded modes), so
# they are reported but do not take the process out of the load balancer, where
# every other process shares the same Redis anyway.
SOFT_CHECKS = frozenset({"redis", "redis_mirrors"})


def aws_readiness_check(service: str, produces: Producer | None) -> ReadinessCheck:
    """Check the AWS resources this service itself depends on exist and answer."""

    async def check_aws(resources: Resources) -> None:
        names = resources.settings.resource_names
        if produces is not None:
            arn = await resources.events_topic_arn(produces)
            await resources.aws.sns.get_topic_attributes(TopicArn=arn)
        if service in SUBSCRIPTIONS:
            await resources.aws.sqs.get_queue_url(QueueName=names.queue(service))

    return check_aws


def health_router(checks: dict[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Database and AWS are reachable (Redis reported; without it, degraded)",
        responses={503: {"model": ProblemDetail}},
    )
    async def readyz(request: Request, resources: ResourcesDep) -> Response:
        async def run(name: str, check: ReadinessCheck) -> tuple[str, str]:
            try:
                await asyncio.wait_for(check(resources), timeout=3.0)
            except Exception as exc:  # reported, not raised: readiness is an answer
                log.warning("readiness check failed", check=name, error=repr(exc))
                return name, f"failing: {type(exc).__name__}"
            return name, "ok"

        results = dict(await asyncio.gather(*(run(n, c) for n, c in checks.items())))
        failing = sorted(name for name, result in results.items() if result != "ok")
        if all(name in SOFT_CHECKS for name in failing):
            body: dict[str, Any] = {"status": "ready", "checks": results}
            if failing:
                body.update(status="degraded", degraded=failing)
            return JSONResponse(body)
        return problem_response(
            request,
            status=503,
            code="not-ready",
            title="Not ready",
            detail="Some dependencies are not reachable.",
            checks=results,
        )

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(resources: ResourcesDep) -> Response:
        return Response(
            generate_latest(resources.telemetry.registry), media_type=CONTENT_TYPE_LATEST
        )

    return router


DOCS_ASSETS = "/docs-assets"
PROBLEM_CONTENT: dict[str, Any] = {
    PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}
}
MALFORMED_BODY_RESPONSE = {
    "description": "The body is not JSON (or nests too deep to parse)",
    "content": PROBLEM_CONTENT,
}


def document_bearer_auth(app: FastAPI) -> None:
    """Mark every route that needs a token with the bearer scheme in the OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from POST /v1/auth/login",
                }
            }
            # Included routers are kept as contexts; walk them to the real routes.
            for context in iter_route_contexts(app.routes):
                route = context.original_route
                needs = bearer_auth_of(route.dependant) if isinstance(route, APIRoute) else None
                if needs is None:
                    continue
                # A public route that does more for a token takes either.
                security: list[dict[str, list[str]]] = [{"bearer": []}]
                if needs == "optional":
                    security.insert(0, {})
                operations = schema["paths"].get(context.path_format, {})
                for method in context.methods or ():
                    if method.lower() in operations:
                        operations[method.lower()]["security"] = security
            for operations in schema["paths"].values():
                for operation in operations.values():
                    # A body that is not JSON at all (or nests too deep to parse) is a
                    # 400 before validation: say so wherever a body is taken.
                    if "requestBody" in operation:
                        operation["responses"].setdefault("400", MALFORMED_BODY_RESPONSE)
                    # Every error is problem+json, FastAPI's own 422 included.
                    for status, response in operation["responses"].items():
                        content = response.get("content", {})
                        if status[:1] in "45" and content and PROBLEM_CONTENT_TYPE not in content:
                            response["content"] = dict(PROBLEM_CONTENT)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


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
    `ServiceDefinition` (shared/runtime.py), not by calling this directly.
    """
    telemetry = resources.telemetry if resources else Telemetry(settings.service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            opened = resources or await open_resources(settings, stack, telemetry)
            app.state.resources = opened
            if start is not None:
                app.state.components = await start(opened, stack)
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
        # Server spans come from shared/tracing.py's middleware when tracing is on;
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
        app.add_middleware(TracingMiddleware, sample_ratio=settings.tracing_sample_ratio)
    return app
