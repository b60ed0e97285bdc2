"""The delivery service, declared once: the shared code builds its app and worker."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import structlog
from starlette.middleware import Middleware

from services.delivery.api import ROUTERS
from services.delivery.components import Components, build_components
from services.delivery.consumers import HANDLERS
from services.delivery.fastpath import DeliveryFastPath
from services.delivery.offline import prune_offline_ids
from services.delivery.settings import DeliverySettings
from shared.contracts.events import Producer
from shared.resources import Resources
from shared.service.definition import ServiceDefinition

log = structlog.get_logger(__name__)

DESCRIPTION = """Signed links to published books, and reading sessions.

`POST /v1/deliveries {book_id}` answers a link to the book's PDF that lives a
few minutes (S3 presigned, or CloudFront signed when configured), if the
caller may read it: free books for everyone signed in, others with an
entitlement. `PUT /v1/reading/{book_id}/progress` records how far they got.
"""

# Readers loaded into the cache at start-up (most deployments hold them all).
WARM_READERS = 200_000


async def start(
    settings: DeliverySettings, resources: Resources, stack: AsyncExitStack
) -> Components:
    components = await build_components(settings, resources, stack)
    # Before the first request (uvicorn listens once start-up ends): a deploy
    # must not meet a whole school with empty caches.
    books, readers = await components.links.warm_up(max_readers=WARM_READERS)
    log.info("caches warmed", books=books, readers=readers)
    return components


SERVICE = ServiceDefinition[DeliverySettings, Components](
    name="delivery",
    title="1001 Stories — delivery",
    description=DESCRIPTION,
    settings_class=DeliverySettings,
    routers=ROUTERS,
    build_components=start,
    fast_paths=[Middleware(DeliveryFastPath)],
    produces=Producer.DELIVERY,
    handlers=HANDLERS,
    worker_jobs=[prune_offline_ids],
    migrations=Path(__file__).parent / "migrations",
    default_port=8003,
)
