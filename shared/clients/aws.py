"""AWS clients (aioboto3) pointed at AWS itself, LocalStack or moto by settings alone."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aioboto3
from botocore.config import Config

from shared.contracts.events import Producer
from shared.contracts.names import ResourceNames
from shared.observe.client_spans import trace_aws_client
from shared.observe.tracing import tracing_enabled
from shared.settings import ServiceSettings


@dataclass
class AwsClients:
    sns: Any
    sqs: Any
    s3: Any
    cloudwatch: Any
    # Presigns links for browsers (the same client unless AWS_PUBLIC_ENDPOINT_URL is set).
    s3_public: Any


async def open_aws_clients(settings: ServiceSettings, stack: AsyncExitStack) -> AwsClients:
    """Open SNS, SQS, S3 and CloudWatch clients that close with `stack`."""
    session = aioboto3.Session(
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=(
            settings.aws_secret_access_key.get_secret_value()
            if settings.aws_secret_access_key
            else None
        ),
        region_name=settings.aws_region,
    )
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=max(30, settings.consumer_wait_seconds + 10),
        max_pool_connections=50,
        # SigV4 everywhere: presigned links carry X-Amz-Expires, which S3
        # enforces (SigV2 links are refused by newer regions anyway).
        signature_version="s3v4",
        # Path-style keeps presigned URLs valid on emulators without wildcard DNS.
        s3={"addressing_style": "path"} if settings.aws_endpoint_url else None,
    )

    async def client(name: str, endpoint_url: str | None = settings.aws_endpoint_url) -> Any:
        opened = await stack.enter_async_context(
            session.client(name, endpoint_url=endpoint_url, config=config)
        )
        if tracing_enabled(settings):
            trace_aws_client(opened)
        return opened

    s3 = await client("s3")
    public = settings.aws_public_endpoint_url
    return AwsClients(
        sns=await client("sns"),
        sqs=await client("sqs"),
        s3=s3,
        cloudwatch=await client("cloudwatch"),
        s3_public=await client("s3", public) if public else s3,
    )


async def topic_arn(sns: Any, names: ResourceNames, producer: Producer | str) -> str:
    # CreateTopic is idempotent and answers the ARN without needing list rights.
    response = await sns.create_topic(Name=names.topic(producer))
    arn: str = response["TopicArn"]
    return arn


async def queue_url(sqs: Any, name: str) -> str:
    response = await sqs.get_queue_url(QueueName=name)
    url: str = response["QueueUrl"]
    return url
