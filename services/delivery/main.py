"""Assembles the delivery service from the shared app factory."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import structlog
from fastapi import FastAPI
from starlette.middleware import Middleware

from services.delivery.api import ROUTERS
from services.delivery.consumers import HANDLERS
from services.delivery.fastpath import DeliveryFastPath
from services.delivery.reading import ReadingRecorder
from services.delivery.service import (
    BOOKS_CHANNEL,
    READERS_CHANNEL,
    BookCache,
    DeliveryComponents,
    DeliveryService,
    ReaderCache,
)
from services.delivery.settings import DeliverySettings
from services.delivery.signing import CloudFrontSigner, S3LinkSigner
from shared.app import Resources, create_service_app
from shared.db import create_engine, create_session_factory
from shared.events import Producer
from shared.outbox import GroupCommitRecorder
from shared.ratelimit import SharedWindowLimiter
from shared.runtime import ServiceDefinition
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

DESCRIPTION = """Signed links to published books, and reading sessions.

`POST /v1/deliveries {book_id}` answers a link to the book's PDF that lives a
few minutes (S3 presigned, or CloudFront signed when configured), if the
caller may read it: free books for everyone signed in, others with an
entitlement. `PUT /v1/reading/{book_id}/progress` records how far they got.
"""


# Readers loaded into the cache at start-up (most deployments hold them all).
WARM_READERS = 200_000
# Group commits in flight at once, per kind (link events, page turns); each has
# its own connection.
GROUP_COMMITS_IN_FLIGHT = 3


def build_components(
    settings: DeliverySettings, resources: Resources, stack: AsyncExitStack
) -> DeliveryComponents:
    # The hot paths' writes (link events, page turns) have connections of their
    # own: a link or a page turn never queues behind other work for a connection.
    writes_engine = create_engine(
        settings.database_url,
        schema=settings.database_schema,
        pool_size=2 * GROUP_COMMITS_IN_FLIGHT,
    )
    stack.push_async_callback(writes_engine.dispose)
    writes = create_session_factory(writes_engine)
    read_engine = resources.engine.execution_options(isolation_level="AUTOCOMMIT")
    cloudfront = None
    if settings.cloudfront_domain and settings.cloudfront_keys:
        cloudfront = CloudFrontSigner(
            settings.cloudfront_domain,
            {k.key_pair_id: k.private_key.get_secret_value() for k in settings.cloudfront_keys},
            settings.cloudfront_active_key_id,
        )
    return DeliveryComponents(
        settings=settings,
        books=BookCache(resources.bus, BOOKS_CHANNEL, ttl=60.0, max_entries=100_000),
        # Emptied per reader when an event about them is applied; the TTL only
        # bounds how long a lost invalidation could keep a stale answer.
        readers=ReaderCache(
            resources.bus, READERS_CHANNEL, ttl=60.0, max_entries=200_000, parse_key=uuid.UUID
        ),
        s3_signer=S3LinkSigner(
            resources.aws.s3,
            settings.resource_names.bucket("published"),
            region=settings.aws_region,
            endpoint_url=settings.aws_public_endpoint_url or settings.aws_endpoint_url,
            link_seconds=settings.link_seconds,
        ),
        cloudfront=cloudfront,
        limiter=SharedWindowLimiter(
            resources.redis, "links", limit=settings.links_per_minute, window_seconds=60
        ),
        recorder=GroupCommitRecorder(writes, max_in_flight=GROUP_COMMITS_IN_FLIGHT),
        reads=create_session_factory(read_engine),
        read_engine=read_engine,
        reading=ReadingRecorder(
            writes,
            step_percent=settings.progress_step_percent,
            max_in_flight=GROUP_COMMITS_IN_FLIGHT,
        ),
    )


def create_app(
    settings: ServiceSettings | None = None, resources: Resources | None = None
) -> FastAPI:
    delivery_settings = settings if isinstance(settings, DeliverySettings) else DeliverySettings()

    async def start(app: FastAPI, r: Resources, stack: AsyncExitStack) -> None:
        components = build_components(delivery_settings, r, stack)
        app.state.delivery = components
        # Before the first request (uvicorn listens once start-up ends): a deploy
        # must not meet a whole school with empty caches.
        books, readers = await DeliveryService(components).warm_up(max_readers=WARM_READERS)
        log.info("caches warmed", books=books, readers=readers)

    return create_service_app(
        delivery_settings,
        title="1001 Stories — delivery",
        description=DESCRIPTION,
        routers=ROUTERS,
        produces=Producer.DELIVERY,
        resources=resources,
        extra_lifespan=start,
        middleware=[Middleware(DeliveryFastPath)],
    )


SERVICE = ServiceDefinition(
    name="delivery",
    settings_class=DeliverySettings,
    create_app=create_app,
    produces=Producer.DELIVERY,
    handlers=HANDLERS,
    migrations=Path(__file__).parent / "migrations",
    default_port=8003,
)
