"""LocalStack ready.d hook: create the platform's topics, queues, DLQs, subscriptions
and buckets from topology.json, the plan `stories topology` prints from the same
code `stories bootstrap` runs (a test keeps the file current and runs this hook).

LocalStack runs it in its own interpreter, which has boto3 and nothing of ours,
so it reads plain data. Idempotent: every call creates or brings up to date.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import boto3

PLAN = Path(
    os.environ.get("STORIES_TOPOLOGY", Path(__file__).resolve().parent.parent / "topology.json")
)
ENDPOINT = os.environ.get("STORIES_BOOTSTRAP_ENDPOINT", "http://localhost:4566")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")


def client(name: str) -> Any:
    return boto3.client(
        name,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )


def queue_policy(queue_arn: str, topic_arns: list[str]) -> str:
    # Only the platform's own topics may write to the queue.
    return json.dumps(
        {
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
    )


def apply(plan: dict[str, Any]) -> None:
    sns, sqs, s3 = client("sns"), client("sqs"), client("s3")
    topics = {name: sns.create_topic(Name=name)["TopicArn"] for name in plan["topics"]}

    def arn(url: str) -> str:
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    for queue in plan["queues"]:
        dlq_url = sqs.create_queue(
            QueueName=queue["dead_letter_queue"],
            Attributes={"MessageRetentionPeriod": str(queue["dead_letter_retention_seconds"])},
        )["QueueUrl"]
        url = sqs.create_queue(QueueName=queue["name"])["QueueUrl"]
        queue_arn = arn(url)
        sources = [topics[s["topic"]] for s in queue["subscriptions"]]
        sqs.set_queue_attributes(
            QueueUrl=url,
            Attributes={
                "VisibilityTimeout": str(queue["visibility_seconds"]),
                "RedrivePolicy": json.dumps(
                    {
                        "deadLetterTargetArn": arn(dlq_url),
                        "maxReceiveCount": str(queue["max_receive_count"]),
                    }
                ),
                "Policy": queue_policy(queue_arn, sources),
            },
        )
        for subscription in queue["subscriptions"]:
            topic = topics[subscription["topic"]]
            existing = [
                s["SubscriptionArn"]
                for page in sns.get_paginator("list_subscriptions_by_topic").paginate(
                    TopicArn=topic
                )
                for s in page.get("Subscriptions", [])
                if s.get("Endpoint") == queue_arn and s.get("Protocol") == "sqs"
            ]
            attributes = {"RawMessageDelivery": "true"}
            if subscription["filter_policy"] is not None:
                attributes["FilterPolicy"] = subscription["filter_policy"]
            if not existing:
                sns.subscribe(
                    TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes
                )
            for name, value in attributes.items():
                for subscription_arn in existing:
                    sns.set_subscription_attributes(
                        SubscriptionArn=subscription_arn, AttributeName=name, AttributeValue=value
                    )
    for bucket in plan["buckets"]:
        name = bucket["name"]
        kwargs: dict[str, Any] = {"Bucket": name}
        if REGION != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": REGION}
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(**kwargs)
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        if bucket["versioned"]:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    print(
        f"stories bootstrap: {len(topics)} topics, {len(plan['queues'])} queues with DLQs, "
        f"{len(plan['buckets'])} buckets"
    )


apply(json.loads(PLAN.read_text()))
