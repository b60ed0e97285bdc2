"""A running metrics service (API over HTTP, worker consuming its SQS queue) for
tests, beside a running access service that issues tokens and decides."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from services.metrics.main import SERVICE
from services.metrics.main import SERVICE as METRICS
from services.metrics.models import RecordedEvent
from services.metrics.settings import MetricsSettings
from shared.clients.aws import queue_url
from shared.clients.db import drop_schema
from shared.contracts.envelope import Envelope
from shared.resources import Resources, open_resources
from shared.service.migrations import upgrade
from shared.service.runtime import run_worker
from tests.conftest import make_settings
from tests.harness.access import AccessHarness
from tests.support import ThreadedServer


def metrics_settings(access: AccessHarness, **overrides: Any) -> MetricsSettings:
    values: dict[str, Any] = {
        "resource_prefix": access.settings.resource_prefix,
        "access_url": access.url,
        "jwks_url": f"{access.url}/.well-known/jwks.json",
        "cloudwatch_export_seconds": 0,
    }
    values.update(overrides)
    settings = make_settings(
        MetricsSettings,
        database_url=access.settings.database_url,
        moto_url=str(access.settings.aws_endpoint_url),
        **values,
    )
    assert isinstance(settings, MetricsSettings)
    return settings


@dataclass
class MetricsHarness:
    url: str
    settings: MetricsSettings
    resources: Resources
    http: httpx.AsyncClient
    queue_url: str

    async def send(self, envelopes: Iterable[Envelope | str]) -> None:
        """Put events on the metrics queue as SNS (raw delivery) would."""
        sqs = self.resources.aws.sqs
        for envelope in envelopes:
            body = envelope if isinstance(envelope, str) else envelope.model_dump_json()
            await sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)

    async def logged(self) -> int:
        async with self.resources.session_factory() as session:
            return int(await session.scalar(select(func.count()).select_from(RecordedEvent)) or 0)

    async def drained(self) -> bool:
        """Nothing waiting and nothing in flight on the metrics queue."""
        attributes = (
            await self.resources.aws.sqs.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )
        )["Attributes"]
        return all(int(value) == 0 for value in attributes.values())

    async def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`stories ARGS` as an operator runs it against this metrics service."""
        s = self.settings
        env = {
            **os.environ,
            "METRICS_DATABASE_URL": s.database_url,
            "METRICS_DATABASE_SCHEMA": s.database_schema,
            "REDIS_URL": s.redis_url,
            "AWS_ENDPOINT_URL": str(s.aws_endpoint_url),
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "RESOURCE_PREFIX": s.resource_prefix,
        }
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "stories.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    async def get(self, path: str, headers: dict[str, str], **params: Any) -> Any:
        response = await self.http.get(path, headers=headers, params=params)
        assert response.status_code == 200, response.text
        return response.json()


@asynccontextmanager
async def running_metrics(
    access: AccessHarness, *, port: int | None = None, **overrides: Any
) -> AsyncIterator[MetricsHarness]:
    """The metrics API and worker (with its jobs), on `access`'s queues; its API on
    `port` if given (where access's class report looks for it), else on any."""
    settings = metrics_settings(access, **overrides)
    await upgrade(METRICS.migrations, settings.database_url, settings.database_schema)
    stop = asyncio.Event()
    try:
        async with AsyncExitStack() as stack:
            resources = await open_resources(settings, stack)
            server = stack.enter_context(ThreadedServer(SERVICE.create_app(settings), port))
            http = await stack.enter_async_context(
                httpx.AsyncClient(base_url=server.url, timeout=20)
            )
            queue = await queue_url(resources.aws.sqs, settings.resource_names.queue("metrics"))
            worker = asyncio.create_task(run_worker(METRICS, settings, stop, resources))
            try:
                yield MetricsHarness(server.url, settings, resources, http, queue)
            finally:
                stop.set()
                await worker
    finally:
        await drop_schema(settings.database_url, settings.database_schema)


@pytest.fixture(scope="module")
async def metrics(access: AccessHarness) -> AsyncIterator[MetricsHarness]:
    async with running_metrics(access, port=urlsplit(access.settings.metrics_url).port) as harness:
        yield harness
