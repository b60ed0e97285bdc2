"""`stories bootstrap` makes the topology, idempotently, and the filter policies route."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.bus.outbox import OutboxRelay, record_event
from shared.bus.provision import bootstrap
from shared.clients.aws import queue_url
from shared.clients.db import unit_of_work
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    BookPublished,
    EntitlementRevoked,
    Producer,
    SubmissionCreated,
    UserRegistered,
)
from shared.contracts.names import MAX_RECEIVE_COUNT, SUBSCRIPTIONS
from shared.contracts.roles import Role
from shared.resources import Resources
from shared.settings import ServiceSettings
from tests.support import original_lineage

# Also run against LocalStack by `make test` (TEST_AWS=localstack pytest -m e2e).
pytestmark = pytest.mark.e2e


async def test_bootstrap_twice_changes_nothing(
    resources: Resources, settings: ServiceSettings
) -> None:
    aws = resources.aws
    again = await bootstrap(
        sns=aws.sns, sqs=aws.sqs, s3=aws.s3, names=settings.resource_names, region="us-east-1"
    )
    prefix = settings.resource_prefix
    queues = (await aws.sqs.list_queues(QueueNamePrefix=prefix))["QueueUrls"]
    assert len(queues) == 2 * len(SUBSCRIPTIONS)  # each queue and its DLQ, once
    for topic in again["topics"].values():
        subs = (await aws.sns.list_subscriptions_by_topic(TopicArn=topic))["Subscriptions"]
        endpoints = [s["Endpoint"] for s in subs]
        assert len(endpoints) == len(set(endpoints))
    buckets = {b["Name"] for b in (await aws.s3.list_buckets())["Buckets"]}
    assert {f"{prefix}uploads", f"{prefix}published"} <= buckets
    versioning = await aws.s3.get_bucket_versioning(Bucket=f"{prefix}published")
    assert versioning["Status"] == "Enabled"


async def test_every_queue_has_a_dlq_after_five_receives(
    resources: Resources, settings: ServiceSettings
) -> None:
    names = settings.resource_names
    for consumer in SUBSCRIPTIONS:
        url = await queue_url(resources.aws.sqs, names.queue(consumer))
        attrs = await resources.aws.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["RedrivePolicy"]
        )
        policy = json.loads(attrs["Attributes"]["RedrivePolicy"])
        assert policy["deadLetterTargetArn"].endswith(names.dead_letter_queue(consumer))
        assert int(policy["maxReceiveCount"]) == MAX_RECEIVE_COUNT


async def test_subscriptions_deliver_only_the_event_types_each_consumer_takes(
    resources: Resources, settings: ServiceSettings
) -> None:
    book = uuid.uuid4()
    events = [
        BookPublished(
            book_id=book,
            object_key="k",
            object_version="v",
            access="free",
            language="en",
            **original_lineage(book),
        ),
        SubmissionCreated(
            submission_id=uuid.uuid4(), author_id=uuid.uuid4(), language="en", category="animals"
        ),
        EntitlementRevoked(
            entitlement_id=uuid.uuid4(), user_id=uuid.uuid4(), book_id=uuid.uuid4(), revoked_by=None
        ),
        UserRegistered(user_id=uuid.uuid4(), role=Role.LEARNER),
    ]
    for producer in (Producer.CONTENT, Producer.ACCESS):
        async with unit_of_work(resources.session_factory) as session:
            for event in events:
                if event.producer is producer:
                    record_event(session, event)
        relay = OutboxRelay(
            session_factory=resources.session_factory,
            sns=resources.aws.sns,
            topic_arn=await resources.events_topic_arn(producer),
            telemetry=resources.telemetry,
        )
        await relay.publish_pending()

    received = {}
    for consumer in SUBSCRIPTIONS:
        url = await queue_url(resources.aws.sqs, settings.resource_names.queue(consumer))
        types = []
        while True:
            response = await resources.aws.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            if not response.get("Messages"):
                break
            types += [Envelope.model_validate_json(m["Body"]).type for m in response["Messages"]]
        received[consumer] = sorted(types)

    assert received == {
        "access": ["book.published"],
        "content": ["book.published"],  # its own, to process the publication
        "delivery": ["book.published", "entitlement.revoked", "user.registered"],
        "metrics": sorted(e.type for e in events),
    }
