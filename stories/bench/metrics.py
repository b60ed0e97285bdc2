"""`stories bench metrics`: the metrics consumer against the raw SQS loop, and how long
an event takes from its producer's commit until `GET /v1/metrics/overview` shows it.

- throughput: the same number of events waits in two queues of one emulator; the
  raw loop receives 10 at a time and batch-deletes; the metrics consumer (its
  real handlers, PostgreSQL, one commit per batch of 10) applies them.
- lag: a producer commits one event at a time at a steady 100/s into an outbox;
  the relay publishes to SNS, SNS fans out to the metrics queue, the consumer
  applies it, and a poller asks the metrics API (its own process, real tokens
  from a running access service) for the overview every few milliseconds. An
  event is visible when the overview's count reaches it.

Run against moto (default) and LocalStack (`--emulator localstack`, which starts
the pinned LocalStack of `scripts/ensure-localstack`, or uses
`BENCH_LOCALSTACK_URL`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
from sqlalchemy import text

from services.access.main import SERVICE as ACCESS
from services.metrics.main import SERVICE as METRICS
from services.metrics.settings import MetricsSettings
from shared.bus.consumer import EventContext, EventHandler, SqsConsumer
from shared.bus.outbox import record_event
from shared.clients.aws import queue_url
from shared.clients.db import create_engine, drop_schema, ensure_database, unit_of_work
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    DeliveryIssued,
    EventData,
    Producer,
    ReadingProgressed,
    SubmissionCreated,
    UserLoggedIn,
)
from shared.contracts.roles import Role
from shared.resources import Resources
from shared.service.migrations import upgrade
from shared.service.runtime import event_consumer, outbox_relay
from stories.bench.events import bootstrapped, content_outbox, receive_and_delete
from stories.bench.harness import BENCH_DATABASE_URL, Figure, uvicorn_process
from stories.bench.services import BENCH_REDIS_URL, UNLIMITED_ADDRESS
from stories.emulator import localstack_process, moto_server_process

POLL_SECONDS = 0.02  # the lag's resolution; faster polling loads the API it measures


def mixed_events(count: int) -> list[EventData]:
    """What the metrics queue carries in a day, roughly: mostly reading, some people."""
    users = [uuid.uuid4() for _ in range(200)]
    books = [uuid.uuid4() for _ in range(50)]
    events: list[EventData] = []
    for n in range(count):
        user, book = users[n % len(users)], books[n % len(books)]
        kind = n % 10
        if kind < 5:
            events.append(DeliveryIssued(book_id=book, user_id=user, method="s3"))
        elif kind < 8:
            events.append(
                ReadingProgressed(book_id=book, user_id=user, page=n % 20 + 1, total_pages=20)
            )
        elif kind < 9:
            events.append(UserLoggedIn(user_id=user, role=Role.LEARNER))
        else:
            events.append(_submission())
    return events


def _submission() -> SubmissionCreated:
    return SubmissionCreated(
        submission_id=uuid.uuid4(), author_id=uuid.uuid4(), language="en", category="animals"
    )


async def _fill(sqs: Any, url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        await sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": body}
                for i, body in enumerate(bodies[start : start + 10])
            ],
        )


async def raw_drain(sqs: Any, url: str, count: int) -> float:
    """Receive 10 at a time and batch-delete until `count` are gone; events per second."""
    done = 0
    started = time.perf_counter()
    while done < count:
        done += len(await receive_and_delete(sqs, url))
    return count / (time.perf_counter() - started)


async def consumer_drain(resources: Resources, settings: MetricsSettings, count: int) -> float:
    """The metrics consumer applies `count` waiting events; events per second."""
    applied: list[float] = []
    finished = asyncio.Event()
    counted = _timing(applied, count, finished)
    consumer = await _timed_consumer(resources, counted)
    stop = asyncio.Event()
    started = time.perf_counter()
    running = asyncio.create_task(consumer.run(stop))
    await asyncio.wait_for(finished.wait(), timeout=900)
    elapsed = time.perf_counter() - started
    stop.set()
    await running
    return count / elapsed


def _timing(
    applied: list[float], count: int, finished: asyncio.Event
) -> Callable[[EventHandler], EventHandler]:
    """Wrap a handler so each event's commit time is noted (after its batch commits)."""

    def counted(handler: EventHandler) -> EventHandler:
        async def handle(context: EventContext, data: EventData) -> None:
            await handler(context, data)

            async def committed() -> None:
                applied.append(time.perf_counter())
                if len(applied) >= count:
                    finished.set()

            context.after_commit(committed)

        return handle

    return counted


async def _timed_consumer(
    resources: Resources, timed: Callable[[EventHandler], EventHandler]
) -> SqsConsumer:
    """The metrics worker's consumer (its real handlers, batches of 10), each handler timed."""
    handlers = {contract: timed(h) for contract, h in METRICS.handlers.items()}
    return await event_consumer(resources, "metrics", handlers)


def _percentiles_ms(lags: list[float]) -> tuple[float, float]:
    ordered = sorted(lags)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


async def _admin_token(access_url: str, access_schema: str) -> str:
    email = f"bench-{uuid.uuid4().hex[:8]}@example.org"
    password = "bench passphrase 2026"  # noqa: S105 - a throwaway account
    async with httpx.AsyncClient(base_url=access_url, timeout=10) as http:
        registered = await http.post(
            "/v1/auth/register",
            json={"email": email, "password": password, "display_name": "B", "birth_year": 1990},
        )
        registered.raise_for_status()
        engine = create_engine(BENCH_DATABASE_URL, schema=access_schema)
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE users SET role = 'CONTENT_ADMIN' WHERE email = :email"),
                {"email": email},
            )
        await engine.dispose()
        login = await http.post("/v1/auth/login", json={"email": email, "password": password})
        login.raise_for_status()
        token: str = login.json()["access_token"]
        return token


async def commit_to_visible(
    outbox: Resources,
    resources: Resources,
    metrics_url: str,
    token: str,
    *,
    rate: float,
    seconds: float,
) -> tuple[tuple[float, float], tuple[float, float], int]:
    """p50 and p99 (ms) from a producer's commit until the consumer has committed the
    event, and until the overview counts it."""
    count = int(rate * seconds)
    applied: list[float] = []
    timed = _timing(applied, count, asyncio.Event())
    relay = await outbox_relay(outbox, Producer.CONTENT)
    consumer = await _timed_consumer(resources, timed)
    headers = {"Authorization": f"Bearer {token}"}

    async def drafts(http: httpx.AsyncClient) -> int:
        response = await http.get("/v1/metrics/overview", headers=headers)
        response.raise_for_status()
        return int(response.json()["submissions_by_status"].get("DRAFT", 0))

    committed: list[float] = []
    visible: list[float] = []
    stop = asyncio.Event()
    workers = [asyncio.create_task(relay.run(stop)), asyncio.create_task(consumer.run(stop))]
    async with httpx.AsyncClient(base_url=metrics_url, timeout=10) as http:
        start_count = await drafts(http)

        async def produce() -> None:
            started = time.perf_counter()
            for n in range(count):
                await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
                async with unit_of_work(outbox.session_factory) as session:
                    record_event(session, _submission())
                committed.append(time.perf_counter())

        producer = asyncio.create_task(produce())
        deadline = time.perf_counter() + seconds + 60
        while len(visible) < count and time.perf_counter() < deadline:
            shown = await drafts(http) - start_count
            now = time.perf_counter()
            visible += [now] * max(0, shown - len(visible))
            await asyncio.sleep(POLL_SECONDS)
        await producer
    stop.set()
    await asyncio.gather(*workers)
    # The n-th commit against the n-th event applied / shown: counts, not identities,
    # since the overview shows how many, not which.
    to_applied = _percentiles_ms([a - c for a, c in zip(sorted(applied), committed, strict=False)])
    to_visible = _percentiles_ms([v - c for v, c in zip(visible, committed, strict=False)])
    return to_applied, to_visible, len(visible)


@contextlib.contextmanager
def _emulator(name: str) -> Iterator[str]:
    if name == "moto":
        with moto_server_process() as url:
            yield url
    elif os.environ.get("BENCH_LOCALSTACK_URL"):
        yield os.environ["BENCH_LOCALSTACK_URL"]
    else:
        with localstack_process() as url:
            yield url


async def bench_metrics(
    *, events: int, emulator: str = "moto", steady_rate: float = 100.0, seconds: float = 10.0
) -> list[Figure]:
    tag = uuid.uuid4().hex[:8]
    metrics_schema, access_schema = f"bench_metrics_{tag}", f"bench_access_{tag}"
    await ensure_database(BENCH_DATABASE_URL)
    await upgrade(METRICS.migrations, BENCH_DATABASE_URL, metrics_schema)
    await upgrade(ACCESS.migrations, BENCH_DATABASE_URL, access_schema)
    figures: list[Figure] = []
    try:
        with _emulator(emulator) as aws_url:
            prefix = f"bench{tag}-"
            common = {
                "REDIS_URL": BENCH_REDIS_URL,
                "AWS_ENDPOINT_URL": aws_url,
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "RESOURCE_PREFIX": prefix,
                "LOG_LEVEL": "WARNING",
                "ENVIRONMENT": "development",
            }
            settings = MetricsSettings(
                environment="development",
                database_url=BENCH_DATABASE_URL,
                database_schema=metrics_schema,
                redis_url=BENCH_REDIS_URL,
                aws_endpoint_url=aws_url,
                aws_access_key_id="bench",
                aws_secret_access_key="bench",  # noqa: S106 - the emulator takes any
                resource_prefix=prefix,
                outbox_poll_seconds=0.05,
                cloudwatch_export_seconds=0,
                consumer_batch_size=10,
                consumer_wait_seconds=1,
            )
            async with AsyncExitStack() as stack:
                resources, raw_url = await bootstrapped(settings, stack, f"{prefix}raw")
                aws = resources.aws
                metrics_url = await queue_url(aws.sqs, settings.resource_names.queue("metrics"))
                bodies = [Envelope.wrap(e).model_dump_json() for e in mixed_events(events)]
                await _fill(aws.sqs, raw_url, bodies)
                raw = await raw_drain(aws.sqs, raw_url, events)
                await _fill(aws.sqs, metrics_url, bodies)
                applied = await consumer_drain(resources, settings, events)
                row = f"raw SQS receive+delete loop, {events:,} waiting ({emulator})"
                figures += [
                    Figure("metrics", row, raw, "ev/s"),
                    Figure(
                        "metrics",
                        f"metrics consumer applies them, batches of 10 ({emulator})",
                        applied,
                        "ev/s",
                        baseline_of=row,
                        target_ratio=0.6,
                    ),
                ]
                access_env = {
                    **common,
                    **UNLIMITED_ADDRESS,
                    "ACCESS_DATABASE_URL": BENCH_DATABASE_URL,
                    "ACCESS_DATABASE_SCHEMA": access_schema,
                }
                with uvicorn_process(
                    "services.access.main:SERVICE.create_app", access_env, "/healthz"
                ) as access_url:
                    metrics_env = {
                        **common,
                        "METRICS_DATABASE_URL": BENCH_DATABASE_URL,
                        "METRICS_DATABASE_SCHEMA": metrics_schema,
                        "ACCESS_URL": access_url,
                        "JWKS_URL": f"{access_url}/.well-known/jwks.json",
                        "DECISION_CACHE_SECONDS": "600",
                    }
                    with uvicorn_process(
                        "services.metrics.main:SERVICE.create_app", metrics_env, "/healthz"
                    ) as api_url:
                        token = await _admin_token(access_url, access_schema)
                        outbox = await content_outbox(settings, stack, f"bench_content_{tag}")
                        to_applied, to_shown, seen = await commit_to_visible(
                            outbox, resources, api_url, token, rate=steady_rate, seconds=seconds
                        )
                rate = f"{steady_rate:.0f}/s ({emulator})"
                figures += [
                    Figure(
                        "metrics", f"commit -> consumer commit, {rate}", float(seen), "events",
                        *to_applied,
                    ),
                    Figure(
                        "metrics", f"commit -> /overview shows it, {rate}", float(seen), "events",
                        *to_shown, target_p99_ms=1000,
                    ),
                ]  # fmt: skip
    finally:
        await drop_schema(BENCH_DATABASE_URL, metrics_schema)
        await drop_schema(BENCH_DATABASE_URL, access_schema)
    return figures
