"""events: outbox -> SNS -> SQS -> consumer (the metrics service's real handler,
PostgreSQL) vs. a raw SQS send/receive/delete loop, on one moto server."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from services.content.main import SERVICE as CONTENT
from services.metrics.main import SERVICE as METRICS
from services.metrics.settings import MetricsSettings
from shared.bus.consumer import EventContext
from shared.bus.outbox import record_event
from shared.bus.provision import bootstrap
from shared.clients.db import drop_schema, ensure_database, unit_of_work
from shared.contracts.events import EventData, Producer, SubmissionCreated
from shared.resources import Resources, open_resources
from shared.service.migrations import upgrade
from shared.service.runtime import event_consumer, outbox_relay
from shared.settings import ServiceSettings
from stories.bench.harness import BENCH_DATABASE_URL, Figure
from stories.emulator import moto_server_process


def _percentiles(latencies: list[float], rate: float | None) -> tuple[float | None, float | None]:
    if rate is None:
        return None, None  # flat out, latency only says how long the queue grew
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


async def _paced(count: int, rate: float | None, send_ten: Callable[[int], Any]) -> None:
    """Call `send_ten(n)` for batches of up to 10 until `count`, at `rate`/s or flat out."""
    started = time.perf_counter()
    for start in range(0, count, 10):
        if rate is not None:
            due = started + start / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await send_ten(min(10, count - start))


def _mode(rate: float | None, count: int) -> str:
    return f"{count} flat out" if rate is None else f"{rate:.0f}/s steady"


async def bootstrapped(
    settings: ServiceSettings, stack: AsyncExitStack, raw_queue: str
) -> tuple[Resources, str]:
    """Resources on a bootstrapped topology, and the URL of a queue of the raw
    SQS loop's own (the baseline), beside the platform's queues."""
    resources = await open_resources(settings, stack)
    aws = resources.aws
    await bootstrap(
        sns=aws.sns,
        sqs=aws.sqs,
        s3=aws.s3,
        names=settings.resource_names,
        region=settings.aws_region,
    )
    raw_url = (await aws.sqs.create_queue(QueueName=raw_queue))["QueueUrl"]
    return resources, str(raw_url)


async def content_outbox(
    settings: ServiceSettings, stack: AsyncExitStack, schema: str
) -> Resources:
    """Where the benchmarks' events start: content's outbox, in a schema of its own
    migrated as content's (metrics, which consumes them, keeps no outbox), on the
    same database, emulator and names as `settings`; dropped with `stack`."""
    await upgrade(CONTENT.migrations, settings.database_url, schema)
    stack.push_async_callback(drop_schema, settings.database_url, schema)
    return await open_resources(settings.model_copy(update={"database_schema": schema}), stack)


async def receive_and_delete(sqs: Any, url: str) -> list[dict[str, Any]]:
    """One turn of the raw baseline loop: receive up to 10, batch-delete them."""
    response = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    messages: list[dict[str, Any]] = response.get("Messages", [])
    if messages:
        await sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    return messages


async def raw_sqs_loop(sqs: Any, url: str, count: int, rate: float | None) -> Figure:
    """Baseline: send in batches of 10; one loop receives 10 at a time and batch-deletes.

    The sends run alongside the loop, flat out (rate None: throughput) or paced
    (latency, send -> delete).
    """

    async def send_ten(n: int) -> None:
        await sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": json.dumps({"sent": time.time()})} for i in range(n)
            ],
        )

    producer = asyncio.create_task(_paced(count, rate, send_ten))
    latencies: list[float] = []
    started = time.perf_counter()
    while len(latencies) < count:
        messages = await receive_and_delete(sqs, url)
        done = time.time()
        latencies += [done - json.loads(m["Body"])["sent"] for m in messages]
    elapsed = time.perf_counter() - started
    await producer
    p50, p99 = _percentiles(latencies, rate)
    row = f"raw SQS loop, {_mode(rate, count)}"
    return Figure("events", row, count / elapsed, "ev/s", p50, p99)


async def outbox_pipeline(
    outbox: Resources, consumer_resources: Resources, count: int, rate: float | None
) -> Figure:
    """Producers commit events (10 per transaction) -> relay -> SNS -> SQS -> consumer.

    The consumer runs the metrics service's real handler on PostgreSQL, one
    commit per batch. Producers commit flat out (rate None: throughput) or paced
    (latency, producer commit -> consumer commit).
    """
    committed_at: dict[uuid.UUID, float] = {}
    latencies: list[float] = []
    finished = asyncio.Event()

    def measured(handler: Callable[[EventContext, Any], Any]) -> Any:
        async def handle(context: EventContext, data: EventData) -> None:
            await handler(context, data)
            event_id = context.envelope.id

            async def done() -> None:
                latencies.append(time.time() - committed_at[event_id])
                if len(latencies) >= count:
                    finished.set()

            context.after_commit(done)

        return handle

    handlers = {contract: measured(h) for contract, h in METRICS.handlers.items()}
    relay = await outbox_relay(outbox, Producer.CONTENT)
    consumer = await event_consumer(consumer_resources, "metrics", handlers)

    async def commit_ten(n: int) -> None:
        async with unit_of_work(outbox.session_factory) as session:
            ids = [record_event(session, _submission_created()).id for _ in range(n)]
        committed_at.update(dict.fromkeys(ids, time.time()))

    producer = asyncio.create_task(_paced(count, rate, commit_ten))
    stop = asyncio.Event()
    started = time.perf_counter()
    workers = [asyncio.create_task(relay.run(stop)), asyncio.create_task(consumer.run(stop))]
    await asyncio.wait_for(finished.wait(), timeout=900)
    elapsed = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*workers)
    await producer
    p50, p99 = _percentiles(latencies, rate)
    return Figure(
        "events",
        f"outbox->SNS->SQS->consumer, {_mode(rate, count)}",
        count / elapsed,
        "ev/s",
        p50,
        p99,
        baseline_of=f"raw SQS loop, {_mode(rate, count)}",
    )


async def bench_events(
    *, events: int, steady_rate: float = 100.0, steady_seconds: float = 10.0
) -> list[Figure]:
    tag = uuid.uuid4().hex[:8]
    await ensure_database(BENCH_DATABASE_URL)
    with moto_server_process() as aws_url:
        settings = MetricsSettings(
            environment="test",
            database_url=BENCH_DATABASE_URL,
            database_schema=f"bench_{tag}",
            redis_url="memory://bench",
            aws_endpoint_url=aws_url,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - the emulator takes any
            resource_prefix=f"bench{tag}-",
            outbox_poll_seconds=0.05,
            # The worker's consumer as deployed, answering within a second when idle.
            consumer_batch_size=10,
            consumer_concurrency=20,
            consumer_wait_seconds=1,
        )
        await upgrade(METRICS.migrations, settings.database_url, settings.database_schema)
        figures = []
        try:
            async with AsyncExitStack() as stack:
                resources, raw_url = await bootstrapped(settings, stack, f"bench{tag}-raw")
                outbox = await content_outbox(settings, stack, f"bench_content_{tag}")
                aws = resources.aws
                for rate in (None, steady_rate):
                    count = events if rate is None else int(steady_rate * steady_seconds)
                    figures.append(await raw_sqs_loop(aws.sqs, raw_url, count, rate))
                    figures.append(await outbox_pipeline(outbox, resources, count, rate))
        finally:
            await drop_schema(settings.database_url, settings.database_schema)
    return figures


def _submission_created() -> SubmissionCreated:
    # Only metrics subscribes to this type, so every event makes one SQS message.
    return SubmissionCreated(
        submission_id=uuid.uuid4(), author_id=uuid.uuid4(), language="en", category="animals"
    )
