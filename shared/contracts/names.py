"""The names of the platform's resources and who listens to whom: topics, queues,
dead-letter queues, subscriptions and buckets, as plain data (#39: pure, apart from
the AWS calls that create them, in shared/bus/provision.py). Settings name their
resources through `ResourceNames`; Terraform and LocalStack read `topology_plan`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.contracts.events import Producer

MAX_RECEIVE_COUNT = 5
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
QUEUE_VISIBILITY_SECONDS = 30

BOOK_EVENTS = ["book.created", "book.updated", "book.published", "book.unpublished"]

# consumer -> producer -> event types it takes (None: every type of that producer).
# Every service writes its part of a person's export (#41); access its own too.
EXPORT_EVENTS = ["user.export_requested"]

SUBSCRIPTIONS: dict[str, dict[Producer, list[str] | None]] = {
    # And learns what each reader read, for their next books (#42), refitting that
    # model when an erased reader's history has gone.
    "access": {
        Producer.CONTENT: BOOK_EVENTS,
        Producer.ACCESS: ["user.erased", *EXPORT_EVENTS],
        # A link is a book opened online; reading.opened one opened offline.
        Producer.DELIVERY: ["delivery.issued", "reading.opened", "reading.completed"],
    },
    # Content's worker processes each publication (page count, thumbnails, lite
    # edition, text for search), off the request path.
    # And forgets an erased author (#41).
    "content": {
        Producer.CONTENT: ["book.published"],
        Producer.ACCESS: ["user.erased", *EXPORT_EVENTS],
    },
    # Delivery decides links from its own read model of books, roles and entitlements.
    "delivery": {
        Producer.CONTENT: ["book.published", "book.updated", "book.unpublished", "book.processed"],
        Producer.ACCESS: [
            "user.registered",
            "user.erased",
            "role.assigned",
            "entitlement.granted",
            "entitlement.revoked",
            *EXPORT_EVENTS,
        ],
    },
    "metrics": dict.fromkeys(Producer),
}

# A person's data export (#41) is written to "exports", kept 7 days.
BUCKETS = ("uploads", "published", "exports")


@dataclass(frozen=True)
class ResourceNames:
    prefix: str

    def topic(self, producer: Producer | str) -> str:
        return f"{self.prefix}{Producer(producer).value}-events"

    def queue(self, consumer: str) -> str:
        return f"{self.prefix}{consumer}"

    def dead_letter_queue(self, consumer: str) -> str:
        return f"{self.prefix}{consumer}-dlq"

    def bucket(self, purpose: str) -> str:
        return f"{self.prefix}{purpose}"


def filter_policy(event_types: list[str] | None) -> str | None:
    if event_types is None:
        return None
    return json.dumps({"type": sorted(event_types)})


def topology_plan(names: ResourceNames) -> dict[str, Any]:
    """Every topic, queue, DLQ, subscription and bucket, as plain data: what
    `bootstrap` creates, and what LocalStack's ready.d hook in docker-compose
    creates from the same plan (infra/localstack/topology.json, kept current by
    a test), so the two can never describe different platforms."""
    return {
        "topics": [names.topic(p) for p in Producer],
        "queues": [
            {
                "name": names.queue(consumer),
                "dead_letter_queue": names.dead_letter_queue(consumer),
                "dead_letter_retention_seconds": DLQ_RETENTION_SECONDS,
                "max_receive_count": MAX_RECEIVE_COUNT,
                "visibility_seconds": QUEUE_VISIBILITY_SECONDS,
                "subscriptions": [
                    {"topic": names.topic(producer), "filter_policy": filter_policy(types)}
                    for producer, types in sources.items()
                ],
            }
            for consumer, sources in SUBSCRIPTIONS.items()
        ],
        "buckets": [
            # Both versioned, as in AWS: signed links bind an object version, so
            # republishing never swaps the file under a link already handed out;
            # a checked manuscript is pinned by its version, and published from it.
            {"name": names.bucket(purpose), "versioned": True}
            for purpose in BUCKETS
        ],
    }
