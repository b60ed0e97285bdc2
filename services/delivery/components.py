"""The delivery service's long-lived parts: built once before the first request,
shared by every request, read through `app_components()` (typed)."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.delivery.links import (
    BOOKS_CHANNEL,
    READERS_CHANNEL,
    BookCache,
    LinkParts,
    LinkService,
    ReaderCache,
)
from services.delivery.offline import DeviceReading
from services.delivery.page_turns import ReadingRecorder
from services.delivery.reading import ReadingService
from services.delivery.settings import DeliverySettings
from services.delivery.signing import CloudFrontSigner, S3LinkSigner
from shared.bus.outbox import GroupCommitRecorder
from shared.clients.db import create_engine, create_session_factory
from shared.clients.ratelimit import SharedWindowLimiter
from shared.resources import Resources
from shared.service.deps import components_accessors

# Group commits in flight at once, per kind (link events, page turns); each has
# its own connection.
GROUP_COMMITS_IN_FLIGHT = 3


@dataclass
class Components:
    settings: DeliverySettings
    # Stateless apart from long-lived parts, so one of each serves every request.
    links: LinkService
    reading: ReadingService


async def build_components(
    settings: DeliverySettings, resources: Resources, stack: AsyncExitStack
) -> Components:
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
    links = LinkService(
        LinkParts(
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
            recorder=GroupCommitRecorder(writes_engine, max_in_flight=GROUP_COMMITS_IN_FLIGHT),
            reads=create_session_factory(read_engine),
        )
    )
    reading = ReadingService(
        links,
        page_turns=ReadingRecorder(
            writes,
            step_percent=settings.progress_step_percent,
            max_in_flight=GROUP_COMMITS_IN_FLIGHT,
        ),
        # Uploads are rare and large: the shared pool, not the hot path's writes.
        devices=DeviceReading(
            resources.session_factory, step_percent=settings.progress_step_percent
        ),
        read_engine=read_engine,
    )
    return Components(settings=settings, links=links, reading=reading)


app_components, get_components = components_accessors(Components)


ComponentsDep = Annotated[Components, Depends(get_components)]
