"""The idempotent bootstrap that creates the platform's topics, queues, DLQs,
subscriptions and buckets (shared/contracts/names.py says which) on whatever AWS
endpoint is configured (AWS, LocalStack, moto), and the dead letters' redrive.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from botocore.exceptions import ClientError

from shared.clients.aws import queue_url, topic_arn
from shared.contracts.events import Producer
from shared.contracts.names import BUCKETS, ResourceNames, topology_plan

log = structlog.get_logger(__name__)


async def bootstrap(
    *, sns: Any, sqs: Any, s3: Any, names: ResourceNames, region: str
) -> dict[str, Any]:
    """Create (or bring up to date) every topic, queue, DLQ, subscription and bucket."""
    plan = topology_plan(names)
    topics = {p: await topic_arn(sns, names, p) for p in Producer}
    arn_of = {names.topic(p): arn for p, arn in topics.items()}
    queues: dict[str, str] = {}
    for queue in plan["queues"]:
        dlq_url = (
            await sqs.create_queue(
                QueueName=queue["dead_letter_queue"],
                Attributes={"MessageRetentionPeriod": str(queue["dead_letter_retention_seconds"])},
            )
        )["QueueUrl"]
        dlq_arn = await _queue_arn(sqs, dlq_url)
        url = (await sqs.create_queue(QueueName=queue["name"]))["QueueUrl"]
        arn = await _queue_arn(sqs, url)
        source_arns = [arn_of[sub["topic"]] for sub in queue["subscriptions"]]
        await sqs.set_queue_attributes(
            QueueUrl=url,
            Attributes={
                "VisibilityTimeout": str(queue["visibility_seconds"]),
                "RedrivePolicy": json.dumps(
                    {
                        "deadLetterTargetArn": dlq_arn,
                        "maxReceiveCount": str(queue["max_receive_count"]),
                    }
                ),
                "Policy": json.dumps(_queue_policy(arn, source_arns)),
            },
        )
        for sub in queue["subscriptions"]:
            await _subscribe(sns, arn_of[sub["topic"]], arn, sub["filter_policy"])
        queues[queue["name"].removeprefix(names.prefix)] = url
    for bucket in plan["buckets"]:
        await _create_bucket(s3, bucket["name"], region, versioned=bucket["versioned"])
    log.info("bootstrap complete", topics=len(topics), queues=len(queues), buckets=len(BUCKETS))
    return {"topics": {p.value: a for p, a in topics.items()}, "queues": queues}


async def _queue_arn(sqs: Any, url: str) -> str:
    attrs = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    arn: str = attrs["Attributes"]["QueueArn"]
    return arn


def _queue_policy(queue_arn: str, topic_arns: list[str]) -> dict[str, Any]:
    # Only our own topics may write to the queue.
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowPlatformTopics",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arns}},
            }
        ],
    }


async def _subscribe(sns: Any, topic: str, queue_arn: str, policy: str | None) -> None:
    existing = None
    paginator = sns.get_paginator("list_subscriptions_by_topic")
    async for page in paginator.paginate(TopicArn=topic):
        for sub in page.get("Subscriptions", []):
            if sub.get("Endpoint") == queue_arn and sub.get("Protocol") == "sqs":
                existing = sub["SubscriptionArn"]
    if existing is None:
        attributes = {"RawMessageDelivery": "true"}
        if policy is not None:
            attributes["FilterPolicy"] = policy
        await sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )
        return
    await sns.set_subscription_attributes(
        SubscriptionArn=existing, AttributeName="RawMessageDelivery", AttributeValue="true"
    )
    if policy is not None:
        await sns.set_subscription_attributes(
            SubscriptionArn=existing, AttributeName="FilterPolicy", AttributeValue=policy
        )


async def _create_bucket(s3: Any, name: str, region: str, *, versioned: bool) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        await s3.create_bucket(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    await s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    if versioned:
        await s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


async def peek_dead_letters(
    sqs: Any, names: ResourceNames, consumer: str, *, limit: int = 100
) -> list[dict[str, Any]]:
    """Up to `limit` of a consumer's dead letters, left where they are: each one's
    event type, id and subject (when its body is an event), the reason it was
    dead-lettered (when the consumer gave one), and how often it was received."""
    dlq = await queue_url(sqs, names.dead_letter_queue(consumer))
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(max(1, limit // 10) + 2):  # receives may repeat or come short
        response = await sqs.receive_message(
            QueueUrl=dlq,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=0,  # only looked at: visible again at once
            MessageAttributeNames=["All"],
            AttributeNames=["ApproximateReceiveCount"],
        )
        for message in response.get("Messages", []):
            seen.setdefault(message["MessageId"], _describe_letter(message))
        if len(seen) >= limit or not response.get("Messages"):
            break
    return list(seen.values())[:limit]


def _describe_letter(message: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = None
    event = body if isinstance(body, dict) else {}
    reason = message.get("MessageAttributes", {}).get("dead_letter_reason", {})
    return {
        "message_id": message["MessageId"],
        "type": event.get("type"),
        "event_id": event.get("id"),
        "subject": event.get("subject"),
        "reason": reason.get("StringValue", "after 5 failed receives (see the logs)"),
        "receive_count": int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
    }


async def redrive_dead_letters(sqs: Any, names: ResourceNames, consumer: str) -> int:
    """Move every message in a consumer's DLQ back to its queue; returns how many moved.

    Done by hand because not every emulator has StartMessageMoveTask. A message
    is deleted from the DLQ only after the queue has accepted it.
    """
    source = await queue_url(sqs, names.queue(consumer))
    dlq = await queue_url(sqs, names.dead_letter_queue(consumer))
    moved = 0
    while True:
        response = await sqs.receive_message(
            QueueUrl=dlq,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return moved
        sent = await sqs.send_message_batch(
            QueueUrl=source,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": m["Body"],
                    "MessageAttributes": {
                        k: {"DataType": v["DataType"], "StringValue": v["StringValue"]}
                        for k, v in m.get("MessageAttributes", {}).items()
                        if k != "dead_letter_reason" and "StringValue" in v
                    },
                }
                for i, m in enumerate(messages)
            ],
        )
        accepted = {int(s["Id"]) for s in sent.get("Successful", [])}
        if accepted:
            await sqs.delete_message_batch(
                QueueUrl=dlq,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": messages[i]["ReceiptHandle"]}
                    for i in sorted(accepted)
                ],
            )
        moved += len(accepted)
        if len(accepted) < len(messages):
            raise RuntimeError(f"the queue refused {len(messages) - len(accepted)} messages")
