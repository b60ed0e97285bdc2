"""What a service process holds open: its clients (database, Redis, AWS, HTTP),
the caches and verifiers built on them, and the small dependencies that hand
them to endpoints (`ResourcesDep`, `SessionDep`). Built in the app's lifespan,
never at import; the worker builds the same through `open_resources`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

import httpx
import structlog
from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from shared.clients.access_client import AccessClient
from shared.clients.aws import AwsClients, open_aws_clients, topic_arn
from shared.clients.db import create_engine, create_session_factory, has_work
from shared.clients.decision_cache import DecisionCache
from shared.clients.denylist import TokenDenyList
from shared.clients.pubsub import InvalidationBus
from shared.clients.redis import RedisCircuit, create_redis
from shared.contracts.events import Producer
from shared.http.auth import JwksKeyCache, TokenVerifier
from shared.http.problems import (
    Problem,
)
from shared.observe.client_spans import trace_database
from shared.observe.telemetry import Telemetry
from shared.observe.tracing import configure_tracing
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)
# How long a starting service keeps asking access for its credentials before
# leaving them to their first use: longer than access takes to start beside it.
PREFETCH_SECONDS = 30.0


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
    signing_keys: JwksKeyCache
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

    async def prefetch_credentials(
        self, *, give_up_after: float = PREFETCH_SECONDS, first_pause: float = 0.1
    ) -> None:
        """Access's signing keys and this service's own token, fetched while the API
        starts taking traffic (nothing waits for them): after a deploy, the first
        signed-in requests otherwise all waited on one JWKS fetch, and the first
        staff step paid for its token inside its own deadline, just when access
        was busiest. When every service starts at once (`stories up`, a compose
        up) access may not listen yet: each missing credential is asked again,
        quietly, with a pause doubling up to 2 s, for at most `give_up_after`
        seconds; after that it is left to its first use."""
        loop = asyncio.get_running_loop()
        deadline, pause, attempts = loop.time() + give_up_after, first_pause, 0
        keys = token = False
        while True:
            attempts += 1
            keys = keys or await self.signing_keys.prefetch()
            token = token or await self.access.prefetch_service_token()
            if (keys and token) or loop.time() + pause > deadline:
                break
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)
        log.info(
            "credentials prefetched" if keys and token else "credentials left to first use",
            signing_keys=keys,
            service_token=token,
            attempts=attempts,
        )


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
    bus_wakers: list[Callable[[], None]] = []

    def circuit_changed(is_open: bool) -> None:
        telemetry.redis_circuit_open.set(is_open)
        if not is_open:
            for wake in bus_wakers:
                wake()

    circuit = RedisCircuit(settings.redis_circuit_seconds, on_change=circuit_changed)
    redis = create_redis(
        settings.redis_url, timeout_seconds=settings.redis_timeout_seconds, circuit=circuit
    )
    stack.push_async_callback(redis.aclose)
    aws = await open_aws_clients(settings, stack)
    http = await stack.enter_async_context(
        httpx.AsyncClient(timeout=httpx.Timeout(5.0), limits=httpx.Limits(max_connections=100))
    )
    # Resent for a minute: the longest TTL of the caches it invalidates (LocalCache's).
    bus = InvalidationBus(redis, resend_for=60.0)
    bus_wakers.append(bus.wake)
    denylist = TokenDenyList(redis, bus)
    mirrors = telemetry.redis_mirror_synced
    mirrors.labels(mirror="invalidations").set_function(lambda: float(bus.connected))
    mirrors.labels(mirror="denylist").set_function(lambda: float(denylist.synced))
    signing_keys = JwksKeyCache(
        jwks_url=settings.jwks_url,
        http=http,
        refetch_interval=settings.jwks_refetch_interval_seconds,
        max_age=settings.jwks_cache_seconds,
    )
    verifier = TokenVerifier(
        keys=signing_keys,
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
        signing_keys=signing_keys,
        access=AccessClient(settings, http, decisions),
    )
    stop_bus = asyncio.Event()
    listening = asyncio.create_task(bus.run(stop_bus))
    healing = (
        None
        if settings.redis_url.startswith("memory://")
        else asyncio.create_task(circuit.heal(settings.redis_url, stop_bus))
    )

    async def stop_listening() -> None:
        stop_bus.set()
        await listening
        await bus.aclose()
        if healing is not None:
            await healing

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
